"""MQTT over TLS: the mqtt block's ``tls {}``, client certificates and
``verify_and_map`` (the certificate names the user), on Jetport and nats-server alike."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from certs import TestPKI, make_pki
from mqtt_clients import Paho, rc_value, thread

CONNECT_V311 = bytes.fromhex("101000044d5154540402003c0004") + b"tls1"
USERS = """
authorization { users: [
  {user: "CN=sensor-7", permissions: {publish: "plant.>", subscribe: "plant.>"}}
  {user: dev, password: pw}
] }
"""


@pytest.fixture
def pki(tmp_path: Path) -> TestPKI:
    return make_pki(tmp_path / "pki")


def conf(target: str, tmp_path: Path, pki: TestPKI, tls_extra: str = "", extra: str = "") -> str:
    return (f'server_name: {target}\njetstream {{ store_dir: "{tmp_path / "store"}" }}\n'
            f"mqtt {{\n  host: 127.0.0.1\n  port: -1\n  tls {{\n"
            f'    cert_file: "{pki.server.cert}"\n    key_file: "{pki.server.key}"\n'
            f'    ca_file: "{pki.ca_file}"\n    {tls_extra}\n  }}\n}}\n{extra}')


def tls_client(port: int, cid: str, pki: TestPKI, cert: str | None = None,
               user: str | None = None, password: str = "") -> Paho:
    client = Paho(port, cid, user=user, password=password)
    pair = pki.client(cert, [("CN", cert)]) if cert else None
    client.c.tls_set(ca_certs=pki.ca_file, certfile=pair.cert if pair else None,
                     keyfile=pair.key if pair else None, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    return client


@pytest.mark.differential
async def test_pub_sub_over_tls(launch, tmp_path, pki) -> None:
    server = launch.conf(conf(launch.target, tmp_path, pki))
    assert server.mqtt_port, server.log()
    sub = tls_client(server.mqtt_port, "tls-sub", pki)
    pub = tls_client(server.mqtt_port, "tls-pub", pki)
    await thread(sub.connect)
    await thread(pub.connect)
    try:
        await thread(sub.subscribe, ("secure/#", 1))
        await thread(pub.publish, "secure/door", b"locked", 1)
        msg = (await thread(sub.take, 1))[0]
        assert (msg.topic, msg.payload, msg.qos) == ("secure/door", b"locked", 1)
    finally:
        sub.close()
        pub.close()


@pytest.mark.differential
async def test_plain_client_cannot_use_the_tls_port(launch, tmp_path, pki) -> None:
    """A plain-text CONNECT on the TLS port gets no CONNACK: the connection just ends."""
    server = launch.conf(conf(launch.target, tmp_path, pki))
    reader, writer = await asyncio.open_connection("127.0.0.1", server.mqtt_port)
    writer.write(CONNECT_V311)
    try:
        rest = await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        rest = b""
    writer.close()
    assert not rest.startswith(b"\x20"), rest


@pytest.mark.differential
async def test_verify_and_map_names_the_user(launch, tmp_path, pki) -> None:
    server = launch.conf(conf(launch.target, tmp_path, pki, "verify_and_map: true", USERS))
    mapped = tls_client(server.mqtt_port, "mapped", pki, cert="sensor-7")
    _, rc = await thread(mapped.connect)
    assert rc_value(rc) == 0
    try:
        # The mapped user's permissions hold: plant.> only (so "plant/#", which also
        # subscribes "plant", is refused too).
        codes = await thread(mapped.subscribe, ("plant/+", 1), ("plant/#", 1), ("office/+", 1))
        assert codes == [1, 0x80, 0x80]
    finally:
        mapped.close()
    # A certificate naming no configured user is refused.
    stranger = tls_client(server.mqtt_port, "stranger", pki, cert="nobody")
    _, rc = await thread(stranger.connect)
    assert rc_value(rc) == 0x87
    stranger.c.loop_stop()

"""``jetstream { domain: D }`` on one server: its JetStream answers ``$JS.D.API`` as well
as ``$JS.API``, and says D in INFO, account info and PubAcks, as nats-server does; the
same nats-py code runs against both servers."""

from __future__ import annotations

import json

import nats
import pytest


@pytest.mark.differential
async def test_a_domain_addresses_the_servers_own_jetstream(launch, tmp_path) -> None:
    store = tmp_path / f"store-{launch.target}"
    server = launch.conf(f'jetstream {{ store_dir: "{store}", domain: edge }}\n')
    nc = await nats.connect(server.url)
    try:
        assert nc._server_info.get("domain") == "edge"
        js = nc.jetstream(domain="edge")
        await js.add_stream(name="D", subjects=["d.>"], allow_direct=True)
        ack = await js.publish("d.1", b"one")
        assert (ack.stream, ack.seq, ack.domain) == ("D", 1, "edge")
        # the same stream without the domain, through $JS.API
        plain = nc.jetstream()
        assert (await plain.stream_info("D")).state.messages == 1
        assert (await plain.publish("d.2", b"two")).domain == "edge"
        info = json.loads((await nc.request("$JS.edge.API.INFO", b"")).data)
        assert info["domain"] == "edge" and info["streams"] == 1
        got = await nc.request("$JS.edge.API.DIRECT.GET.D", b'{"last_by_subj":"d.2"}')
        assert got.data == b"two" and got.headers and got.headers["Nats-Sequence"] == "2"
        kv = await js.create_key_value(bucket="cfg")
        await kv.put("mode", b"fast")
        assert (await kv.get("mode")).value == b"fast"
        same = await nc.jetstream().key_value("cfg")
        assert (await same.get("mode")).value == b"fast"
        with pytest.raises(nats.errors.NoRespondersError):
            await nc.request("$JS.other.API.INFO", b"", timeout=2)
    finally:
        await nc.close()

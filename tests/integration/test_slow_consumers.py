"""Bounded memory per client on every door: a client that stops reading is cut off once
what the hub holds for it passes ``max_pending``, counted in /varz ``slow_consumers``,
while the publisher and the other subscribers keep their pace.

The budget is set small (4 MB) so a few tens of megabytes of traffic show it."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import httpx
import nats
import pytest
from servers import Launch, ServerProcess
from test_mqtt_conformance import V3, V5, connect, pkt, subscribe

BUDGET = 4 << 20
CONF = """
server_name: budget
max_pending: 4MB
max_payload: 64KB
write_deadline: "5s"
http: "127.0.0.1:-1"
mqtt {{ port: -1 }}
websocket {{ port: -1, no_tls: true }}
jetstream {{ store_dir: "{store}" }}
"""
PAYLOAD = b"p" * 8000


def start(tmp_path: Path, extra: str = "") -> ServerProcess:
    conf = tmp_path / "budget.conf"
    conf.write_text(CONF.format(store=tmp_path / "js") + extra)
    server = Launch(tmp_path)("-c", str(conf))
    server.ws_port = int(server.log().split("websocket clients on ws://")[1]
                         .split(":")[1].split()[0])
    return server


def rss(server: ServerProcess) -> int:
    assert server.proc is not None
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def varz(server: ServerProcess) -> dict:
    return httpx.get(f"http://127.0.0.1:{server.http_port}/varz").json()


def stalled_socket(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return sock


async def flood_until_cut(server: ServerProcess, subject: str, witness, limit_mb: int = 120,
                          ) -> int:
    """Publish on ``subject`` until /varz counts a slow consumer; meanwhile ``witness``
    (a normal subscriber) must keep receiving everything.  The bytes published."""
    nc = await nats.connect(server.url)
    sent = 0
    try:
        while sent < limit_mb << 20:
            for _ in range(64):
                await nc.publish(subject, PAYLOAD)
            sent += 64 * len(PAYLOAD)
            await nc.flush()
            if varz(server)["slow_consumers"]:
                break
        await nc.publish(subject, b"last")
        await nc.flush()
    finally:
        await nc.close()
    assert varz(server)["slow_consumers"] == 1, f"nobody cut off after {sent >> 20} MB"
    got = await witness(sent // len(PAYLOAD) + 1)
    assert got[-1] == b"last"
    return sent


async def normal_subscriber(server: ServerProcess, subject: str):
    nc = await nats.connect(server.url)
    sub = await nc.subscribe(subject, pending_bytes_limit=-1, pending_msgs_limit=-1)
    await nc.flush()

    async def witness(expected: int) -> list[bytes]:
        out = [(await sub.next_msg(10)).data for _ in range(expected)]
        await nc.close()
        return out

    return witness


def ended(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server still sends, until it closes; the last bytes."""
    sock.settimeout(timeout)
    tail = b""
    try:
        while chunk := sock.recv(1 << 20):
            tail = (tail + chunk)[-64:]
    except (ConnectionResetError, TimeoutError):
        pass
    return tail


async def test_mqtt_qos0_reader_that_stops_is_cut_off(tmp_path: Path) -> None:
    server = start(tmp_path)
    try:
        base = rss(server)
        for version in (V5,):
            sock = stalled_socket(server.mqtt_port)
            sock.sendall(connect("stalled", version))
            sock.recv(64)
            sock.sendall(subscribe(1, ("flood/x", 0), version=version))
            time.sleep(0.2)
            witness = await normal_subscriber(server, "flood.x")
            await flood_until_cut(server, "flood.x", witness)
            assert rss(server) - base < 8 * BUDGET
            ended(sock)
            sock.close()
        assert "Slow Consumer Detected" in server.log()
    finally:
        server.stop()


async def test_mqtt_qos1_session_that_never_acks_is_cut_off(tmp_path: Path) -> None:
    server = start(tmp_path)
    try:
        sock = stalled_socket(server.mqtt_port)
        sock.sendall(connect("no-acks", V3))
        sock.recv(64)
        sock.sendall(subscribe(1, ("flood/q", 1)))
        time.sleep(0.2)
        witness = await normal_subscriber(server, "flood.q")
        await flood_until_cut(server, "flood.q", witness)
        ended(sock)
        sock.close()
    finally:
        server.stop()


async def test_offline_persistent_session_keeps_its_queue_in_the_store(tmp_path: Path) -> None:
    """Past the budget an offline session's queue lives in the store only; the client
    gets every message, in order, when it comes back."""
    server = start(tmp_path)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.mqtt_port)
        writer.write(connect("away", V3, flags=0x00))  # clean session 0: persistent
        await reader.readexactly(4)
        writer.write(subscribe(1, ("away/q", 1)))
        await reader.readexactly(5)
        writer.close()
        await asyncio.sleep(0.2)
        nc = await nats.connect(server.url)
        count = (3 * BUDGET) // len(PAYLOAD)
        for i in range(count):  # at QoS 1, as an MQTT publisher's would be
            await nc.publish("away.q", b"%08d" % i + PAYLOAD, headers={"Nmqtt-Pub": "1"})
        await nc.flush()
        await nc.close()
        await asyncio.sleep(1.0)
        assert rss(server) < 200 << 20
        assert varz(server)["slow_consumers"] == 0

        reader, writer = await asyncio.open_connection("127.0.0.1", server.mqtt_port)
        writer.write(connect("away", V3, flags=0x00))
        assert (await reader.readexactly(4))[2] == 1  # session present
        got = []
        while len(got) < count:
            first = await asyncio.wait_for(reader.readexactly(1), 20)
            length, shift = 0, 0
            while True:
                byte = (await reader.readexactly(1))[0]
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            body = await reader.readexactly(length)
            assert first[0] & 0xF0 == 0x30
            topic_len = int.from_bytes(body[:2], "big")
            pid = body[2 + topic_len:4 + topic_len]
            got.append(int(body[4 + topic_len:12 + topic_len]))
            writer.write(pkt(0x40, pid))  # PUBACK
        assert got == list(range(count))
        writer.close()
    finally:
        server.stop()


async def test_sse_reader_that_stops_is_ended(tmp_path: Path) -> None:
    server = start(tmp_path)
    try:
        sock = stalled_socket(server.http_port)
        sock.sendall(b"GET /v1/subscribe/flood.s HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        assert b"200" in sock.recv(4096)
        base = rss(server)
        witness = await normal_subscriber(server, "flood.s")
        await flood_until_cut(server, "flood.s", witness)
        # The stream ends with an error event behind what the socket still holds; the
        # hub keeps only that socket's buffers, not the flood.
        assert rss(server) - base < 8 * BUDGET
        assert "SSE on flood.s: Slow Consumer Detected" in server.log()
        sock.close()
    finally:
        server.stop()


async def test_websocket_reader_that_stops_is_cut_off(tmp_path: Path) -> None:
    server = start(tmp_path)
    try:
        sock = stalled_socket(server.ws_port)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     b"Sec-WebSocket-Version: 13\r\n\r\n")
        sock.settimeout(5)
        assert b"101" in sock.recv(4096)
        connect_line = b'CONNECT {"verbose":false}\r\nSUB flood.w 1\r\n'
        mask = b"\x00\x00\x00\x00"
        sock.sendall(bytes([0x82, 0x80 | len(connect_line)]) + mask + connect_line)
        time.sleep(0.2)
        witness = await normal_subscriber(server, "flood.w")
        await flood_until_cut(server, "flood.w", witness)
        ended(sock)
        sock.close()
    finally:
        server.stop()




@pytest.mark.parametrize("stall", [True, False], ids=["stall", "no_fast_producer_stall"])
async def test_a_reader_that_stops_holds_its_publisher_only_briefly(tmp_path: Path,
                                                                    stall: bool) -> None:
    """A NATS subscriber that stops reading slows its publisher for milliseconds at a
    time (counted in /varz ``stalled_clients`` and the publisher's /connz ``stalls``),
    never for the write deadline: it is cut off at ``max_pending``.  With
    ``no_fast_producer_stall`` the publisher is not slowed at all."""
    server = start(tmp_path, "" if stall else "no_fast_producer_stall: true\n")
    try:
        sock = stalled_socket(server.port)
        sock.sendall(b'CONNECT {"verbose":false}\r\nSUB flood.n 1\r\nPING\r\n')
        time.sleep(0.2)
        nc = await nats.connect(server.url, name="publisher")
        longest, stalls = 0.0, 0
        try:
            while not varz(server)["slow_consumers"]:
                began = time.monotonic()
                for _ in range(64):
                    await nc.publish("flood.n", PAYLOAD)
                await nc.flush()
                longest = max(longest, time.monotonic() - began)
                conns = httpx.get(f"http://127.0.0.1:{server.http_port}/connz").json()
                stalls = max([c.get("stalls", 0) for c in conns["connections"]
                              if c.get("name") == "publisher"] + [stalls])
        finally:
            await nc.close()
        assert longest < 1.0, f"a burst waited {longest:.2f} s"
        assert "MaxPending of 4194304 exceeded" in server.log()
        if stall:
            assert varz(server)["stalled_clients"] > 0 and stalls > 0
        else:
            assert varz(server)["stalled_clients"] == 0 and stalls == 0
        ended(sock)
        sock.close()
    finally:
        server.stop()

"""``jetport bench`` without a server: its protocol clients fed bytes by hand, the server
commands it would run, and its labels."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from jetport.bench.common import count_label
from jetport.bench.counter import Counter
from jetport.bench.jsclient import JsConn, status_of
from jetport.bench.mqtt import Progress, publish_frame
from jetport.bench.mqttflow import PINGREQ, FrameSink, stream
from jetport.bench.rawclient import Endpoint
from jetport.bench.servers import (
    find_nats_server,
    free_ports,
    jetport_command,
    nats_server_command,
)
from jetport.bench.subjects import Sink, Tally, batches, cycle_frames


class _Transport:
    """Just enough transport for feeding a protocol by hand."""

    def __init__(self) -> None:
        self.written = b""

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _feed(proto: Counter | FrameSink, data: bytes) -> None:
    buf = proto.get_buffer(-1)
    buf[: len(data)] = data
    proto.buffer_updated(len(data))


async def test_counter_survives_control_lines_split_across_reads() -> None:
    counter = Counter(Endpoint("127.0.0.1", 4222), "t", b"SUB s 1\r\n")
    transport = _Transport()
    counter.connection_made(transport)  # type: ignore[arg-type]
    _feed(counter, b'INFO {"server_id":"x"}\r\n')
    assert transport.written.startswith(b"CONNECT ")
    _feed(counter, b"PONG\r\n")
    frame = b"MSG s 1 3\r\nxxx\r\n"
    _feed(counter, frame)
    assert counter.primed.done()
    done = counter.expect(7)
    stream = frame * 2 + b"PING\r\n" + frame * 3 + b"INFO {}\r\n" + frame * 2
    for step in (1, 2, 5, 7):
        for i in range(0, len(stream), step):
            _feed(counter, stream[i : i + step])
        assert done.done() and counter.count == 7, step
        assert transport.written.endswith(b"PONG\r\n")
        done = counter.expect(7)



async def test_sink_counts_msg_and_hmsg_and_pongs_split_anywhere() -> None:
    """Deliveries are counted by their control lines alone, so a marker split across two
    reads must count once, and a PONG split the same way must still end a flush."""
    msg = b"MSG dev.0001.temp 1 3\r\nxxx\r\n"
    hmsg = b"HMSG dev.0002.temp 7 28 31\r\nNATS/1.0\r\nNats-Sensor: t\r\n\r\nxxx\r\n"
    stream = msg + hmsg + b"PING\r\n" + msg * 2 + b"PONG\r\n" + hmsg
    for step in range(1, len(stream) + 1):
        tally = Tally()
        sink = Sink(Endpoint("127.0.0.1", 4222), "t", b"SUB dev.*.temp 1\r\n", tally)
        transport = _Transport()
        sink.connection_made(transport)  # type: ignore[arg-type]
        sink.data_received(b'INFO {"server_id":"x"}\r\nPONG\r\n')
        done = tally.arm(5)
        flush = asyncio.ensure_future(sink.flush())
        await asyncio.sleep(0)
        for i in range(0, len(stream), step):
            sink.data_received(stream[i : i + step])
        await asyncio.sleep(0)
        assert (sink.count, tally.total, done.done(), flush.done()) == (5, 5, True, True), step
        assert transport.written.endswith(b"PING\r\nPONG\r\n")


def test_mqtt_sink_counts_by_bytes_and_acks_every_packet_id_split_anywhere() -> None:
    """The fast path counts uniform QoS 1 deliveries by length and PUBACKs their packet
    ids in bulk; a PINGRESP or a DUP among them, split anywhere, takes the exact path."""
    frames = [publish_frame("t/q1", b"xyz", 1, pid) for pid in (1, 2, 300, 4, 65535, 6)]
    dup = bytes([frames[1][0] | 0x08]) + frames[1][1:]
    data = b"".join(frames[:3]) + b"\xd0\x00" + dup + b"".join(frames[3:])
    acks = b"".join(b"\x40\x02" + f[-5:-3] for f in [*frames[:3], dup, *frames[3:]])
    for step in range(1, len(data) + 1):
        sink = FrameSink(Progress(), bufsize=64)
        transport = _Transport()
        sink.connection_made(transport)  # type: ignore[arg-type]
        sink.expect(frames[0], len(frames[0]) - 5)
        for i in range(0, len(data), step):
            chunk = data[i : i + step]
            while chunk:  # as a transport does: no more than the buffer holds
                n = min(len(sink.get_buffer(-1)), len(chunk))
                _feed(sink, chunk[:n])
                chunk = chunk[n:]
        assert (sink.received, sink.pongs, transport.written) == (7, 1, acks), step
        sink.ping()
        assert transport.written.endswith(PINGREQ) and sink.pings == 1


def test_mqtt_stream_packet_ids_run_on_across_batches() -> None:
    run = stream("t", b"x" * 100, 1, window=10)
    frame = publish_frame("t", b"x" * 100, 1, 1)
    assert run.frame == len(frame) and run.per == 5 and run.ahead == 1000
    ids = [int.from_bytes(b[i + 5 : i + 7], "big")
           for b in run.batches for i in range(0, len(b), len(frame))]
    assert ids == list(range(1, len(ids) + 1)) and len(ids) > 10 + run.per
    qos0 = stream("t", b"x" * 16, 0, window=0)
    assert qos0.per == len(qos0.batches[0]) // qos0.frame and len(qos0.batches) == 1
    assert qos0.ahead == 1000 + (1 << 20) // qos0.frame


def test_subject_cycle_mixes_subjects_sizes_and_headers() -> None:
    frames = cycle_frames(1000)
    assert len(frames) == 3_000
    assert frames[0] == b"PUB dev.0000.temp 32\r\n" + b"x" * 32 + b"\r\n"
    assert frames[1].startswith(b"PUB dev.0001.temp 200\r\n")
    assert frames[3] == (b"HPUB dev.0003.temp 28 60\r\nNATS/1.0\r\nNats-Sensor: t\r\n\r\n"
                         + b"x" * 32 + b"\r\n")
    assert sum(f.startswith(b"HPUB ") for f in frames) == 750
    assert b"".join(batches(frames)) == b"".join(frames)


def test_server_commands() -> None:
    cmd = jetport_command(4333)
    assert cmd[-5:] == ["serve", "-a", "127.0.0.1", "-p", "4333"]
    cmd = jetport_command(4333, Path("/tmp/store"))
    assert cmd[-7:] == ["-a", "127.0.0.1", "-p", "4333", "-js", "-sd", "/tmp/store"]
    if find_nats_server() is not None:
        cmd = nats_server_command(4333, Path("/tmp/store"))
        assert cmd[1:] == ["-a", "127.0.0.1", "-p", "4333", "-js", "-sd", "/tmp/store"]


def test_count_label() -> None:
    assert [count_label(n) for n in (1_000_000, 1_500_000, 200_000, 2_000, 1234)] == [
        "1M", "1.5M", "200k", "2k", "1234"]


async def test_js_parser_splits_messages_statuses_and_api_replies() -> None:
    conn = JsConn(Endpoint("127.0.0.1", 4222), "t")
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.data_received(b'INFO {"server_id":"x"}\r\n')
    assert b"SUB " + conn.inbox.encode() + b"* 1\r\n" in transport.written
    conn.data_received(b"PONG\r\n")
    seen: list[tuple[bytes, bytes, bytes | None, bytes]] = []
    conn.on_msg = lambda *m: seen.append(m)
    chunks = 0

    def count_chunk() -> None:
        nonlocal chunks
        chunks += 1

    conn.on_chunk = count_chunk
    inbox = conn.inbox.encode()
    status = b"NATS/1.0 408 Request Timeout\r\n\r\n"
    ack = b'{"stream":"S","seq":7}'
    stream = (b"MSG bench.x 1 $JS.ACK.S.C.1.1.1.0.0 3\r\nxxx\r\nPING\r\n"
              + b"HMSG %bp1 1 %d %d\r\n%b\r\n" % (inbox, len(status), len(status), status)
              + b"MSG %b7 1 %d\r\n%b\r\n" % (inbox, len(ack), ack))
    for i in range(0, len(stream), 5):
        conn.data_received(stream[i : i + 5])
    assert seen == [
        (b"bench.x", b"$JS.ACK.S.C.1.1.1.0.0", None, b"xxx"),
        (inbox + b"p1", b"", status, b""),
        (inbox + b"7", b"", None, ack),
    ]
    assert status_of(seen[1][2]) == (408, "Request Timeout")
    assert transport.written.endswith(b"PONG\r\n") and chunks > 10
    conn.connection_lost(None)


def test_free_ports_of_one_pick_are_distinct_and_free() -> None:
    ports = free_ports(300)
    assert len(set(ports)) == 300
    socks = []
    try:
        for port in ports[:20]:
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", port))
    finally:
        for s in socks:
            s.close()

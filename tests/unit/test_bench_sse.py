"""The SSE bench subscriber fed a response by hand: stamps are found however the bytes are
split, and missing or repeated events are counted."""

from __future__ import annotations

from jetport.bench.sse import Arrivals, SseReader

HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
        b"transfer-encoding: chunked\r\n\r\ne\r\n: subscribed\n\n\r\n")


def _event(seq: int, sent_ns: int) -> bytes:
    text = (b'event: message\ndata: {"subject":"bench.sse","data":"%d.%d",'
            b'"encoding":"utf-8"}\n\n' % (seq, sent_ns))
    return b"%x\r\n%b\r\n" % (len(text), text)


class _Transport:
    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str) -> None:
        return None

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


async def test_sse_reader_finds_every_stamp_split_anywhere() -> None:
    stream = (HEAD + _event(0, 5) + b"f\r\n: keepalive\n\n\r\n" + _event(2, 7) + _event(1, 6)
              + _event(2, 7))
    for step in range(1, len(stream) + 1):
        arrivals = Arrivals(1, 3)
        reader = SseReader(b"GET /v1/subscribe/bench.sse HTTP/1.1\r\n\r\n", 0, arrivals)
        transport = _Transport()
        reader.connection_made(transport)  # type: ignore[arg-type]
        for i in range(0, len(stream), step):
            reader.data_received(stream[i : i + step])
        assert reader.ready.done() and reader.error is None, step
        assert arrivals.total == 4 and len(arrivals.latencies_ns) == 4, step
        assert (arrivals.missing(), arrivals.duplicates()) == (0, 1), step
    assert transport.written.startswith(b"GET /v1/subscribe/")


async def test_sse_reader_reports_a_refusal_and_an_error_event() -> None:
    refused = SseReader(b"", 0, Arrivals(1, 1))
    transport = _Transport()
    refused.connection_made(transport)  # type: ignore[arg-type]
    refused.data_received(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
    assert refused.error == "HTTP/1.1 403 Forbidden" and transport.closed
    assert refused.ready.done()
    refused.ready.exception()
    arrivals = Arrivals(1, 2)
    slow = SseReader(b"", 0, arrivals)
    transport = _Transport()
    slow.connection_made(transport)  # type: ignore[arg-type]
    slow.data_received(HEAD + b'event: error\ndata: {"description": "slow consumer"}\n\n')
    assert slow.error is not None and "slow consumer" in slow.error and transport.closed
    assert slow.ready.done() and arrivals.missing() == 2

"""Raw-protocol JetStream pieces shared by the ``js-*`` scenarios.

JetStream needs nothing beyond core NATS on the wire: API calls are requests to ``$JS.API.*``
subjects with JSON bodies, a publish to a stream subject that carries a reply subject is
answered with a PubAck, and a pull consumer delivers to the reply subject of a
``CONSUMER.MSG.NEXT`` request with a ``$JS.ACK.*`` reply subject per message.

A ``JsConn`` holds two wildcard inbox subscriptions: one for the data path (PubAcks, pull
deliveries), handed to a scenario's ``on_msg``, and one for API replies, resolved to the
awaiting ``request``. Message handlers run per message; ``on_chunk`` runs once per read, so
the replies a read produces (next publishes, acks) go out in one write.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .common import run_tag
from .rawclient import PONG, Endpoint, RawConn, fail, pub_frame

DATA_SID = b"1"
API_SID = b"2"
API_TIMEOUT = 10.0

# (subject, reply, header block or None, payload)
JsHandler = Callable[[bytes, bytes, bytes | None, bytes], None]


class JsError(Exception):
    """A JetStream API call failed or was not answered."""


def _ignore(_subject: bytes, _reply: bytes, _hdr: bytes | None, _payload: bytes) -> None:
    pass


def status_of(hdr: bytes | None) -> tuple[int, str] | None:
    """Code and description of a status header block (``NATS/1.0 408 Request Timeout``)."""
    if not hdr:
        return None
    first = hdr.split(b"\r\n", 1)[0].split(None, 2)
    if len(first) < 2 or not first[1].isdigit():
        return None
    return int(first[1]), first[2].decode(errors="replace") if len(first) > 2 else ""


def stream_names(kind: str) -> tuple[str, str]:
    """A stream name and its one subject, unique per run so shared servers do not mix."""
    rand = secrets.token_hex(4)
    return f"BENCH_{kind.upper()}_{rand}", f"bench.{run_tag()}.{rand}.{kind}"


class JsConn(RawConn):
    """A connection with a MSG/HMSG parser, a data inbox and a JetStream API inbox."""

    def __init__(self, endpoint: Endpoint, name: str) -> None:
        tag = secrets.token_hex(8)
        self.inbox = f"_INBOX.{tag}."
        self.api_inbox = f"_INBOX.{tag}a."
        setup = b"SUB %b* %b\r\nSUB %b* %b\r\n" % (
            self.inbox.encode(), DATA_SID, self.api_inbox.encode(), API_SID)
        # no_responders: a request nobody serves (JetStream off) fails at once with status 503.
        super().__init__(endpoint, name, setup, {"no_responders": True})
        self.on_msg: JsHandler = _ignore
        self.on_chunk: Callable[[], None] | None = None
        self.on_writable: Callable[[], None] | None = None
        self._buf = b""
        self._need = -1  # payload bytes of the message being read; -1 between messages
        self._hsize = 0
        self._msg: tuple[bytes, bytes, bytes] = (b"", b"", b"")
        self._api: dict[bytes, asyncio.Future[tuple[bytes | None, bytes]]] = {}
        self._api_seq = 0
        self._pongs: deque[asyncio.Future[float]] = deque()

    # -- parsing ------------------------------------------------------------------------------
    def on_data(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos, size = 0, len(buf)
        while True:
            need = self._need
            if need >= 0:
                if size - pos < need + 2:
                    break
                end = pos + need
                sid, subject, reply = self._msg
                hs = self._hsize
                self._need = -1
                hdr = buf[pos : pos + hs] if hs else None
                payload = buf[pos + hs : end]
                pos = end + 2
                if sid == DATA_SID:
                    self.on_msg(subject, reply, hdr, payload)
                else:
                    self._api_reply(subject, hdr, payload)
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            line = buf[pos:eol]
            pos = eol + 2
            if line.startswith(b"MSG "):
                parts = line.split()
                self._msg = (parts[2], parts[1], parts[3] if len(parts) == 5 else b"")
                self._hsize, self._need = 0, int(parts[-1])
            elif line.startswith(b"HMSG "):
                parts = line.split()
                self._msg = (parts[2], parts[1], parts[3] if len(parts) == 6 else b"")
                self._hsize, self._need = int(parts[-2]), int(parts[-1])
            elif line == b"PING":
                self.write(PONG)
            elif line == b"PONG":
                if self._pongs:
                    waiter = self._pongs.popleft()
                    if not waiter.done():
                        waiter.set_result(time.perf_counter())
            elif line.startswith(b"-ERR"):
                self.error = line.decode(errors="replace")
        self._buf = buf[pos:]
        if self.on_chunk is not None:
            self.on_chunk()

    def _api_reply(self, subject: bytes, hdr: bytes | None, payload: bytes) -> None:
        waiter = self._api.pop(subject[subject.rfind(b".") + 1 :], None)
        if waiter is not None and not waiter.done():
            waiter.set_result((hdr, payload))

    # -- flow control and loss ----------------------------------------------------------------
    def resume_writing(self) -> None:
        super().resume_writing()
        if self.on_writable is not None:
            self.on_writable()

    def on_lost(self, reason: str) -> None:
        for api in self._api.values():
            fail(api, reason)
        for pong in self._pongs:
            fail(pong, reason)
        self._api.clear()
        self._pongs.clear()

    # -- requests -----------------------------------------------------------------------------
    async def flush(self, timeout: float = API_TIMEOUT) -> float:
        """PING and wait for the PONG: everything written before has reached the server.
        Returns when the PONG arrived."""
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pongs.append(waiter)
        self.write(b"PING\r\n")
        async with asyncio.timeout(timeout):
            return await waiter

    async def request(self, subject: str, body: dict[str, Any] | None = None,
                      timeout: float = API_TIMEOUT) -> dict[str, Any]:
        """One JetStream API call; raises ``JsError`` with the server's description."""
        self._api_seq += 1
        token = b"%d" % self._api_seq
        waiter: asyncio.Future[tuple[bytes | None, bytes]] = (
            asyncio.get_running_loop().create_future())
        self._api[token] = waiter
        payload = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        self.write(pub_frame(subject, payload, self.api_inbox + token.decode()))
        try:
            async with asyncio.timeout(timeout):
                hdr, data = await waiter
        except TimeoutError:
            raise JsError(f"{subject}: no reply within {timeout:g}s") from None
        except Exception as exc:
            raise JsError(f"{subject}: {exc}") from exc
        finally:
            self._api.pop(token, None)
        status = status_of(hdr)
        if status is not None and status[0] == 503:
            raise JsError(f"{subject}: no responders (is JetStream enabled on the target?)")
        if status is not None and status[0] >= 300 and not data:
            raise JsError(f"{subject}: status {status[0]} {status[1]}".rstrip())
        try:
            doc = json.loads(data)
        except ValueError:
            raise JsError(f"{subject}: reply is not JSON: {data[:80]!r}") from None
        if not isinstance(doc, dict):
            raise JsError(f"{subject}: reply is not a JSON object")
        err = doc.get("error")
        if err:
            desc = err.get("description", err) if isinstance(err, dict) else err
            code = f" (err_code {err.get('err_code')})" if isinstance(err, dict) else ""
            raise JsError(f"{subject}: {desc}{code}")
        return doc


async def create_stream(conn: JsConn, name: str, subjects: list[str]) -> dict[str, Any]:
    body = {"name": name, "subjects": subjects, "storage": "file"}
    return await conn.request(f"$JS.API.STREAM.CREATE.{name}", body)


async def stream_messages(conn: JsConn, name: str, timeout: float = API_TIMEOUT) -> int:
    """``state.messages`` of a stream, from STREAM.INFO."""
    info = await conn.request(f"$JS.API.STREAM.INFO.{name}", None, timeout)
    try:
        return int(info["state"]["messages"])
    except (KeyError, TypeError, ValueError):
        raise JsError(f"STREAM.INFO {name}: no state.messages in reply") from None


async def delete_stream(conn: JsConn, name: str) -> str | None:
    """Remove a stream the scenario created; returns why that failed, if it did."""
    if conn.closed.done():
        return conn.error or "connection closed"
    try:
        await conn.request(f"$JS.API.STREAM.DELETE.{name}", None, API_TIMEOUT)
    except JsError as exc:
        return str(exc)
    return None


@dataclass
class PubRun:
    """Result of one pipelined publish: elapsed from first write to last PubAck."""

    elapsed: float
    acked: int
    failed: int
    sent: int
    partial: bool
    error: str | None


class Pipeline:
    """Publish ``count`` messages keeping up to ``window`` PubAcks outstanding.

    Every PUB carries its own reply subject (inbox prefix plus the message's index), as real
    clients do. Refills happen once per read (or when the write buffer drains), in batches of
    at least an eighth of the window, so writes stay large without starving the server.
    """

    def __init__(self, conn: JsConn, subject: str, payload: bytes, count: int,
                 window: int) -> None:
        self.conn, self.count, self.window = conn, count, max(1, window)
        self.sent = self.acked = self.failed = 0
        self.first_error: str | None = None
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._head = f"PUB {subject} {conn.inbox}".encode()
        self._tail = b" %d\r\n%b\r\n" % (len(payload), payload)
        self._min = max(1, min(self.window // 8, 256))

    def start(self) -> None:
        self.conn.on_msg = self._on_ack
        self.conn.on_chunk = self.conn.on_writable = self._top_up
        if self.count <= 0:
            self.done.set_result(time.perf_counter())
            return
        self._top_up()

    def stop(self) -> None:
        self.conn.on_msg = _ignore
        self.conn.on_chunk = self.conn.on_writable = None

    def _on_ack(self, _subject: bytes, _reply: bytes, hdr: bytes | None, payload: bytes) -> None:
        if b'"seq"' in payload and b'"error"' not in payload:
            self.acked += 1
        else:
            self.failed += 1
            if self.first_error is None:
                status = status_of(hdr)
                if status is not None and status[0] == 503:
                    self.first_error = "no responders for the stream subject"
                else:
                    self.first_error = (payload or hdr or b"empty reply")[:200].decode(
                        errors="replace")
        if self.acked + self.failed >= self.count and not self.done.done():
            self.done.set_result(time.perf_counter())

    def _top_up(self) -> None:
        left = self.count - self.sent
        room = self.window - (self.sent - self.acked - self.failed)
        n = min(room, left)
        if n <= 0 or (n < self._min and n < left) or self.conn.paused:
            return
        head, tail, first = self._head, self._tail, self.sent
        self.conn.write(b"".join([head + b"%d" % i + tail for i in range(first, first + n)]))
        self.sent += n


async def publish_pipelined(conn: JsConn, subject: str, payload: bytes, count: int,
                            window: int, timeout: float) -> PubRun:
    """Run a ``Pipeline`` to completion, connection loss or the time limit."""
    pipe = Pipeline(conn, subject, payload, count, window)
    t0 = time.perf_counter()
    pipe.start()
    try:
        waits: set[asyncio.Future[Any]] = {pipe.done, conn.closed}
        await asyncio.wait(waits, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        pipe.stop()
    finished = pipe.done.done()
    t_end = pipe.done.result() if finished else time.perf_counter()
    error = None
    if conn.closed.done() and not finished:
        error = conn.error or "connection closed"
    elif pipe.failed:
        error = f"{pipe.failed} of {pipe.sent} publishes not acknowledged: {pipe.first_error}"
    return PubRun(t_end - t0, pipe.acked, pipe.failed, pipe.sent, not finished, error)

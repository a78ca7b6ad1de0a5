"""A subscriber that counts deliveries of one fixed-size message without parsing them.

In a pubsub run every delivery is the same frame (same subject, sid and size), so after the
first "priming" message has been parsed to learn the frame's exact length, counting is byte
arithmetic over a reused receive buffer. Only two memchr-speed probes run per read: message
traffic never contains ``I`` or ``E`` (subjects and payloads are lowercase), so any control
line (PING, INFO, -ERR) sends that read through an exact frame-by-frame walk instead. This
keeps the client far cheaper than the server even at 1 GB/s of deliveries.
"""

from __future__ import annotations

import asyncio
import time

from .rawclient import PONG, Endpoint, RawConn, fail

M = ord("M")
MAX_CONTROL_LINE = 64 << 10


class Counter(RawConn, asyncio.BufferedProtocol):
    def __init__(self, endpoint: Endpoint, name: str, setup: bytes,
                 bufsize: int = 1 << 20) -> None:
        super().__init__(endpoint, name, setup)
        self.nbytes = 0
        self.primed: asyncio.Future[None] = self.ready.get_loop().create_future()
        self.done: asyncio.Future[float] | None = None
        self._buf = bytearray(bufsize)
        self._view = memoryview(self._buf)
        self._frame = 0  # length of one delivery frame; 0 until primed
        self._hdr = b""  # its MSG line, to check alignment
        self._fb = 0  # bytes of counted frames
        self._base = 0  # _fb when the current expectation was armed
        self._target = 0
        self._ctl: bytes | None = None  # partial control line between frames
        self._pbuf = b""

    @property
    def count(self) -> int:
        """Deliveries since the last ``expect``."""
        return (self._fb - self._base) // self._frame if self._frame else 0

    def expect(self, n: int) -> asyncio.Future[float]:
        """Arm completion: the returned future gets the time the n-th delivery from now arrived.

        Only valid once primed, i.e. when the frame length is known.
        """
        assert self._frame, "expect() before the priming message arrived"
        self._base = self._fb
        self._target = self._fb + n * self._frame
        self.done = self.primed.get_loop().create_future()
        if n <= 0:
            self.done.set_result(time.perf_counter())
        return self.done

    # -- asyncio.BufferedProtocol --------------------------------------------------------------
    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        if not self._frame:
            self.data_received(bytes(self._view[:nbytes]))
            return
        buf = self._buf
        self.nbytes += nbytes
        if (self._ctl is None and buf.find(b"I", 0, nbytes) < 0
                and buf.find(b"E", 0, nbytes) < 0 and self._aligned(nbytes)):
            self._fb += nbytes
        else:
            self._walk(bytes(self._view[:nbytes]))
        done = self.done
        if self._fb >= self._target and done is not None and not done.done():
            done.set_result(time.perf_counter())

    def _aligned(self, n: int) -> bool:
        """Does the last frame starting in this read begin with the expected MSG line?"""
        off = (self._fb + n) % self._frame
        start = n - (off or self._frame)
        if start < 0:
            return True
        k = min(len(self._hdr), n - start)
        return self._buf[start : start + k] == self._hdr[:k]

    def _walk(self, data: bytes) -> None:
        """Exact path: step frame by frame, handling control lines between frames."""
        pos, n, size = 0, len(data), self._frame
        while pos < n:
            if self._ctl is not None:
                line = self._ctl + data[pos:]
                end = line.find(b"\r\n")
                if end < 0:
                    if len(line) > MAX_CONTROL_LINE:
                        self.error = "unexpected data in message stream"
                        self.close()
                    self._ctl = line
                    return
                pos += end + 2 - len(self._ctl)
                self._ctl = None
                self._control(line[:end])
                continue
            off = self._fb % size
            if off == 0 and data[pos] != M:
                self._ctl = b""
                continue
            take = min(size - off, n - pos)
            self._fb += take
            pos += take

    def _control(self, line: bytes) -> None:
        if line == b"PING":
            self.write(PONG)
        elif line.startswith(b"-ERR"):
            self.error = line.decode(errors="replace")

    # -- priming: learn the frame from the first delivery ----------------------------------
    def on_data(self, data: bytes) -> None:
        self._pbuf += data
        while not self._frame:
            end = self._pbuf.find(b"\r\n")
            if end < 0:
                return
            line = self._pbuf[:end]
            if not line.startswith(b"MSG "):
                self._pbuf = self._pbuf[end + 2 :]
                self._control(line)
                continue
            size = end + 2 + int(line.split()[-1]) + 2
            if len(self._pbuf) < size:
                return
            self._frame, self._hdr = size, line + b"\r\n"
            rest, self._pbuf = self._pbuf[size:], b""
            if not self.primed.done():
                self.primed.set_result(None)
            if rest:
                self.nbytes += len(rest)
                self._walk(rest)

    def on_lost(self, reason: str) -> None:
        fail(self.primed, reason)
        fail(self.done, f"{reason} after {self.count} msgs")

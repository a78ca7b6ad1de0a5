"""The hub's end of the pipes to the SQLite writer process (:mod:`.sqlite_worker`):
its answers, framed as the process writes them, and the size of the pipe to it."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from .sqlite_worker import unframe

log = logging.getLogger("jetport.storage")

#: The pipe to the writer process, in bytes (see ``widen``).
PIPE_BYTES = 1 << 20


class Answered(Protocol):
    """What hears the writer process (the hub's ``Writer``)."""

    def on_answer(self, error: str | None) -> None: ...

    def on_worker_gone(self) -> None: ...


class WriterOutput(asyncio.SubprocessProtocol):
    """The writer process's answers, handed over as soon as they arrive."""

    def __init__(self, writer: Answered) -> None:
        self._writer = writer
        self._buf = b""
        self.exited = asyncio.get_running_loop().create_future()

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        answers, self._buf = unframe(self._buf + data)
        for answer in answers:
            self._writer.on_answer(answer.decode(errors="replace") or None)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._writer.on_worker_gone()

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def widen(pipe: asyncio.WriteTransport | None) -> None:
    """Let the pipe to the writer process hold a whole transaction (Linux: 64 KiB by
    default, up to ``/proc/sys/fs/pipe-max-size``, 1 MiB unless raised): a batch then
    goes in one write, not in pieces as the writer reads."""
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return
    size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if pipe is None or size is None:
        return
    try:
        fcntl.fcntl(pipe.get_extra_info("pipe").fileno(), size, PIPE_BYTES)
    except (OSError, AttributeError, ValueError) as exc:
        log.debug("SQLite writer pipe keeps its size (%s)", exc)

"""Logging in nats-server's line format, so tools that read its logs read ours.

``[pid] 2026/11/26 12:45:06.123456 [INF] Server is ready``

The handler sits on the root logger, so the libraries under the doors (uvicorn,
asyncio) write through the same format and into the same ``-l`` file; the ``jetport``
logger carries the level chosen by ``-D``/``-V``, everything else logs warnings and up.
A log file rotates at ``log_size_limit`` bytes and keeps ``logfile_max_num`` backups,
named and announced as nats-server does, and :func:`reopen` (SIGUSR1) lets logrotate
move the file away.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import time

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_TAGS = {TRACE: "TRC", logging.DEBUG: "DBG", logging.INFO: "INF", logging.WARNING: "WRN",
         logging.ERROR: "ERR", logging.CRITICAL: "FTL"}

log = logging.getLogger("jetport")


class NatsFormatter(logging.Formatter):
    def __init__(self, logtime: bool = True, utc: bool = False) -> None:
        super().__init__()
        self.logtime = logtime
        self.clock = time.gmtime if utc else time.localtime
        self.prefix = f"[{os.getpid()}] "

    def format(self, record: logging.LogRecord) -> str:
        tag = _TAGS.get(record.levelno, "INF")
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        if not self.logtime:
            return f"{self.prefix}[{tag}] {msg}"
        t = record.created
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", self.clock(t))
        return f"{self.prefix}{stamp}.{int((t % 1) * 1e6):06d} [{tag}] {msg}"


class LogFile(logging.FileHandler):
    """``-l FILE``: appends, rotates past ``size_limit`` bytes, reopens on request."""

    def __init__(self, path: str, size_limit: int = 0, max_backups: int = 0) -> None:
        super().__init__(path, mode="a", encoding="utf-8")
        self.size_limit = size_limit
        self.max_backups = max_backups

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if self.size_limit > 0 and self.stream is not None:
            try:
                if self.stream.tell() > self.size_limit:
                    self._rotate()
            except OSError:
                self.handleError(record)

    def _rotate(self) -> None:
        now = time.time()
        stamp = time.strftime("%Y.%m.%d.%H.%M.%S", time.localtime(now))
        backup = f"{self.baseFilename}.{stamp}.{int((now % 1) * 1e9):09d}"
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            os.rename(self.baseFilename, backup)
            self.stream = self._open()
        finally:
            self.release()
        log.info('Rotated log, backup saved as "%s"', backup)
        if self.max_backups > 0:
            backups = sorted(glob.glob(glob.escape(self.baseFilename) + ".*"))
            for old in backups[: -self.max_backups]:
                try:
                    os.remove(old)
                except OSError as exc:
                    log.error("Unable to remove backup log file %s: %s", old, exc)

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


_handler: logging.Handler | None = None


def configure(debug: bool = False, trace: bool = False, logtime: bool = True,
              log_file: str = "", *, utc: bool = False, size_limit: int = 0,
              max_backups: int = 0) -> None:
    """Send every log line to stderr, or to ``log_file`` as nats-server's ``-l`` does."""
    global _handler
    handler: logging.Handler = (
        LogFile(log_file, size_limit, max_backups) if log_file
        else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(NatsFormatter(logtime, utc))
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    _handler = handler
    log.handlers.clear()
    log.filters.clear()
    log.propagate = True
    log.setLevel(TRACE if trace else logging.DEBUG if debug else logging.INFO)
    if trace and not debug:  # -V alone traces without debug lines, as nats-server
        log.addFilter(lambda record: record.levelno != logging.DEBUG)


def reopen() -> None:
    """Reopen the log file (SIGUSR1), so a rotated-away file is let go."""
    if isinstance(_handler, LogFile):
        _handler.reopen()
        log.info("File log re-opened")
    else:
        log.info("File log re-open ignored, not a file logger")


def fatal(msg: str) -> None:
    log.critical(msg)

"""Logging in nats-server's line format, so tools that read its logs read ours.

``[pid] 2026/11/26 12:45:06.123456 [INF] Server is ready``
"""

from __future__ import annotations

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
    def __init__(self, logtime: bool = True) -> None:
        super().__init__()
        self.logtime = logtime
        self.prefix = f"[{os.getpid()}] "

    def format(self, record: logging.LogRecord) -> str:
        tag = _TAGS.get(record.levelno, "INF")
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        if not self.logtime:
            return f"{self.prefix}[{tag}] {msg}"
        t = record.created
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(t))
        return f"{self.prefix}{stamp}.{int((t % 1) * 1e6):06d} [{tag}] {msg}"


def configure(debug: bool = False, trace: bool = False, logtime: bool = True,
              log_file: str = "") -> None:
    """Send the hub's log to stderr, or to ``log_file`` as nats-server's ``-l`` does."""
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(NatsFormatter(logtime))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(TRACE if trace else logging.DEBUG if debug else logging.INFO)


def fatal(msg: str) -> None:
    log.critical(msg)

"""What the reliability campaigns (killtest, abuse, soak) share: a hub started from a
config on ports picked once per run, hard kills, the hub's memory and descriptors from
/proc, its log's warnings and errors, and Markdown tables.

The campaigns run as scripts (``python tests/campaigns/killtest.py``) and from the
suite (``tests/integration/test_campaign_*.py``); either way ``tests/`` is importable,
for ``servers`` and ``mqtt_clients``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servers import ServerProcess

#: Log lines that mean something went wrong in the hub.
PROBLEM = re.compile(r"\[(ERR|WRN|FTL)\]|Traceback")
#: The one warning a ``websocket { no_tls: true }`` block always logs at startup (as
#: nats-server does): the configuration's, not a fault.
NO_TLS_WARNING = "Websocket not configured with TLS. DO NOT USE IN PRODUCTION!"


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held together while picked)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def workdir(prefix: str, given: str | None) -> Path:
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix=f"jetport-{prefix}-"))


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- the hub's process -------------------------------------------------------------------

def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (every thread's list)."""
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def mb(n: float) -> str:
    return f"{n / (1 << 20):.1f}"


@dataclass
class Hub:
    """One hub, its config written once with fixed ports, (re)started as often as a
    campaign likes; its log accumulates in ``dir/hub.log`` across starts."""

    dir: Path
    conf: str
    nats_port: int
    http_port: int
    mqtt_port: int
    ws_port: int
    extra_args: list[str] = field(default_factory=list)
    #: Put before the hub's command line, e.g. ``["prlimit", "--nofile=200:200"]``.
    prefix: list[str] = field(default_factory=list)
    server: ServerProcess | None = None
    starts: int = 0

    @classmethod
    def make(cls, dir: Path, body: str, extra_args: list[str] | None = None,
             prefix: list[str] | None = None) -> Hub:
        """``body`` is config text with ``{nats}``, ``{http}``, ``{mqtt}``, ``{ws}`` and
        ``{store}`` placeholders; ports are picked here, once for the run."""
        nats_port, http_port, mqtt_port, ws_port = free_ports(4)
        text = body.format(nats=nats_port, http=http_port, mqtt=mqtt_port, ws=ws_port,
                           store=dir / "store")
        (dir / "hub.conf").write_text(text)
        return cls(dir, text, nats_port, http_port, mqtt_port, ws_port,
                   list(extra_args or []), list(prefix or []))

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.ws_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        assert self.server is not None and self.server.proc is not None
        return self.server.proc.pid

    @property
    def log_path(self) -> Path:
        return self.dir / "hub.log"

    def start(self, timeout: float = 30.0) -> float:
        """Start (retrying while the old listeners' ports are still taken); the seconds
        from exec to "Server is ready"."""
        argv = [*self.prefix, sys.executable, "-m", "jetport.core.cli", "serve", "-a", "127.0.0.1",
                "-p", str(self.nats_port), "-c", str(self.dir / "hub.conf"), *self.extra_args]
        deadline = time.monotonic() + timeout
        while True:
            server = ServerProcess(argv, self.log_path)
            began = time.monotonic()
            try:
                server.start(max(deadline - began, 1.0))
            except RuntimeError:
                if time.monotonic() >= deadline or "address already in use" not in \
                        server.log().lower():
                    raise
                time.sleep(0.2)
                continue
            self.server = server
            self.starts += 1
            return time.monotonic() - began

    def kill9(self, writer_too: bool = True) -> list[int]:
        """SIGKILL the hub's process group and, with ``writer_too``, its SQLite writer
        process (which runs in a session of its own); the writer pids found."""
        assert self.server is not None and self.server.proc is not None
        proc = self.server.proc
        writers = children(proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if writer_too:
            for pid in writers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        proc.wait()
        self.server._log.close()
        return writers

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.server is None:
            return None
        return self.server.stop(timeout=timeout)

    def running(self) -> bool:
        return self.server is not None and self.server.proc is not None and \
            self.server.proc.poll() is None

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def fds(self) -> int:
        return fd_count(self.pid)

    def log_text(self) -> str:
        """The whole log, every start included."""
        return self.log_path.read_bytes().decode(errors="replace")

    def problems(self, since: int = 0) -> list[str]:
        """[ERR]/[WRN]/[FTL] and traceback lines from byte ``since`` on, except the
        no_tls startup warning the config asks for."""
        text = self.log_path.read_bytes()[since:].decode(errors="replace")
        return [line for line in text.splitlines()
                if PROBLEM.search(line) and NO_TLS_WARNING not in line]

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0


# -- reporting ---------------------------------------------------------------------------

def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    cells = [[str(c) for c in row] for row in rows]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(out)


def slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) samples, per hour."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    var = sum((t - mx) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return sum((t - mx) * (v - my) for t, v in samples) / var * 3600


def error_lines(lines: list[str]) -> list[str]:
    """The hub's log lines that report an error: ``[ERR]`` or a traceback."""
    return [line for line in lines if "[ERR]" in line or "Traceback" in line]


def finish(text: str, failures: list[str], most: int = 100) -> int:
    """Print a campaign's report and its failures; the exit status (1 on any failure)."""
    print()
    print(text)
    if not failures:
        return 0
    print("\nFAILURES:")
    for f in failures[:most]:
        print(f"- {f}")
    return 1

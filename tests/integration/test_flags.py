"""Every flag ``jetport serve`` accepts, in each of its spellings, shown to do something.

``EFFECTS`` maps each accepted flag name to a check that starts a server with that flag
and observes what it changed; a flag added to the parser without a check here fails
:func:`test_every_accepted_flag_has_a_check`.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from certs import make_pki
from servers import DEFAULT_PORTS, ROOT, RawClient, ServerProcess, free_port

from jetport.core.config import accepted_flags

JETPORT = [sys.executable, "-m", "jetport.core.cli"]
LOCAL = ["-a", "127.0.0.1", "-p", "-1"]


def serve(tmp: Path, *args: str, env: dict[str, str] | None = None,
          local: bool = True) -> ServerProcess:
    argv = [*JETPORT, "serve", *(LOCAL if local else []), *args]
    return ServerProcess(argv, tmp / f"s{time.monotonic_ns()}.log", env=env, cwd=tmp).start()


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*JETPORT, *args], cwd=cwd, capture_output=True, text=True, timeout=20)


def listening(port: int) -> set[str]:
    found = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            addr, port_hex = fields[1].split(":")
            if fields[3] == "0A" and int(port_hex, 16) == port:
                found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]))
    return found


def wait_for(server: ServerProcess, text: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log():
            return server.log()
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged:\n{server.log()}")


async def info(port: int) -> dict[str, Any]:
    """The INFO a server greets a new client with."""
    raw = await RawClient.open(port)
    await raw.close()
    return raw.info


async def ping(server: ServerProcess, **connect: Any) -> RawClient:
    raw = await RawClient.open(server.port)
    await raw.handshake(**connect)
    return raw


async def welcomed(server: ServerProcess, **connect: Any) -> None:
    """A client with these CONNECT options gets its PONG."""
    await (await ping(server, **connect)).close()


# -- one check per flag ---------------------------------------------------------------


async def host(flag: str, tmp: Path) -> None:
    port = free_port()
    server = serve(tmp, f"-{flag}", "127.0.0.1", "-p", str(port), local=False)
    try:
        assert listening(port) == {"127.0.0.1"}  # nats-server's default is 0.0.0.0
    finally:
        server.stop()


async def port(flag: str, tmp: Path) -> None:
    chosen = free_port()
    server = serve(tmp, "-a", "127.0.0.1", f"-{flag}", str(chosen), local=False)
    try:
        assert server.port == chosen and (await info(chosen))["port"] == chosen
    finally:
        server.stop()


async def server_name(flag: str, tmp: Path) -> None:
    server = serve(tmp, f"-{flag}", "edge-7")
    try:
        assert (await info(server.port))["server_name"] == "edge-7"
    finally:
        server.stop()


async def http_port(flag: str, tmp: Path) -> None:
    chosen = free_port()
    server = serve(tmp, f"-{flag}", str(chosen))
    try:
        assert httpx.get(f"http://127.0.0.1:{chosen}/healthz").json() == {"status": "ok"}
    finally:
        server.stop()


async def config(flag: str, tmp: Path) -> None:
    conf = tmp / "c.conf"
    conf.write_text("server_name: from-file\n")
    server = serve(tmp, f"-{flag}", str(conf))
    try:
        assert (await info(server.port))["server_name"] == "from-file"
    finally:
        server.stop()


async def config_test(flag: str, tmp: Path) -> None:
    conf = tmp / "t.conf"
    conf.write_text("port: 4222\n")
    out = run("serve", f"-{flag}", "-c", str(conf))
    assert out.returncode == 0 and "test is successful" in out.stdout
    conf.write_text("port: 4222\nbogus: 1\n")
    assert run("serve", f"-{flag}", "-c", str(conf)).returncode == 1


async def version(flag: str, tmp: Path) -> None:
    out = run("serve", f"-{flag}")
    assert out.returncode == 0 and "nats-server" in out.stdout and "compatible" in out.stdout


async def help_(flag: str, tmp: Path) -> None:
    out = run("serve", f"-{flag}")
    assert out.returncode == 0 and out.stdout.startswith("usage: jetport serve")


async def jetstream(flag: str, tmp: Path) -> None:
    server = serve(tmp, f"-{flag}", "-sd", str(tmp / "js"))
    try:
        raw = await ping(server)
        await raw.send(b"SUB r 1\r\nPUB $JS.API.INFO r 0\r\n\r\n")
        assert (await raw.read_line()).startswith(b"MSG r 1 ")
        assert b'"type":"io.nats.jetstream.api.v1.account_info_response"' in await raw.read_line()
        await raw.close()
    finally:
        server.stop()


async def store_dir(flag: str, tmp: Path) -> None:
    server = serve(tmp, "-js", f"-{flag}", str(tmp / "chosen"))
    try:
        assert (tmp / "chosen" / "jetstream").is_dir()
    finally:
        server.stop()


async def _refused(server: ServerProcess, **connect: Any) -> bool:
    raw = await RawClient.open(server.port)
    try:
        await raw.send(b"CONNECT " + json.dumps({"verbose": False, **connect}).encode()
                       + b"\r\nPING\r\n")
        return (await raw.read_line()).startswith(b"-ERR 'Authorization Violation'")
    finally:
        await raw.close()


async def user(flag: str, tmp: Path) -> None:
    server = serve(tmp, f"-{flag}", "alice", "--pass", "pw")
    try:
        assert await _refused(server, user="bob", **{"pass": "pw"})
        await welcomed(server, user="alice", **{"pass": "pw"})
    finally:
        server.stop()


async def password(flag: str, tmp: Path) -> None:
    server = serve(tmp, "--user", "alice", f"-{flag}", "pw")
    try:
        assert await _refused(server, user="alice", **{"pass": "wrong"})
        await welcomed(server, user="alice", **{"pass": "pw"})
    finally:
        server.stop()


async def token(flag: str, tmp: Path) -> None:
    server = serve(tmp, f"-{flag}", "t0ken")
    try:
        assert (await info(server.port))["auth_required"] is True
        assert await _refused(server, auth_token="nope")
        await welcomed(server, auth_token="t0ken")
    finally:
        server.stop()


def _tls_args(tmp: Path) -> tuple[list[str], object]:
    pki = make_pki(tmp / "pki")
    return ["--tlscert", pki.server.cert, "--tlskey", pki.server.key], pki


async def tls(flag: str, tmp: Path) -> None:
    alone = run("serve", *LOCAL, f"-{flag}")
    assert alone.returncode == 1 and "--tlscert" in alone.stderr
    args, _ = _tls_args(tmp)
    server = serve(tmp, f"-{flag}", *args)
    try:
        assert (await info(server.port))["tls_required"] is True
    finally:
        server.stop()


async def tls_file(flag: str, tmp: Path) -> None:
    """--tlscert and --tlskey: each one is required, and together they turn TLS on."""
    args, _ = _tls_args(tmp)
    other = args[2:4] if flag == "tlscert" else args[0:2]
    missing = run("serve", *LOCAL, *other)
    assert missing.returncode == 1 and f"--{flag}" in missing.stderr
    server = serve(tmp, *args)
    try:
        assert (await info(server.port))["tls_required"] is True
    finally:
        server.stop()


async def tls_verify(flag: str, tmp: Path) -> None:
    args, pki = _tls_args(tmp)
    extra = ["--tlscacert", pki.ca_file] if flag == "tlsverify" else ["--tlsverify"]
    server = serve(tmp, *args, f"-{flag}", *([pki.ca_file] if flag == "tlscacert" else []),
                   *extra)
    try:
        assert (await info(server.port))["tls_verify"] is True
        anonymous = ssl.create_default_context(cafile=pki.ca_file)
        assert b"PONG" not in _tls_ping(server.port, anonymous)
        known = ssl.create_default_context(cafile=pki.ca_file)
        client = pki.client("c1")
        known.load_cert_chain(client.cert, client.key)
        assert b"PONG" in _tls_ping(server.port, known)
    finally:
        server.stop()


def _tls_ping(port: int, ctx: ssl.SSLContext) -> bytes:
    """What a TLS client gets back for CONNECT+PING (nothing when the server refuses it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.recv(4096)  # INFO comes before the handshake
        try:
            with ctx.wrap_socket(s, server_hostname="localhost") as tls_sock:
                tls_sock.sendall(b"CONNECT {}\r\nPING\r\n")
                got = b""
                while b"PONG" not in got and (chunk := tls_sock.recv(4096)):
                    got += chunk
                return got
        except (ssl.SSLError, OSError):
            return b""


async def debug(flag: str, tmp: Path) -> None:
    server = serve(tmp, f"-{flag}")
    try:
        await welcomed(server)
        log = wait_for(server, "[DBG]")
        assert "Client connection created" in log
        if flag in ("DV", "DVV"):
            assert "[TRC]" in wait_for(server, "[TRC]")
    finally:
        server.stop()


async def trace(flag: str, tmp: Path) -> None:
    server = serve(tmp, f"-{flag}", "-js", "-sd", str(tmp / "tr"))
    try:
        raw = await ping(server)
        await raw.send(b"PUB greet 5\r\nhello\r\nPING\r\n")
        await raw.read_line()
        log = wait_for(server, "MSG_PAYLOAD")
        assert '<<- [PUB greet 5]' in log and '<<- MSG_PAYLOAD: ["hello"]' in log
        assert ("[DBG]" in log) == flag.startswith("D")
        await raw.send(b"SUB r 1\r\nPUB $JS.API.INFO r 0\r\n\r\n")
        await raw.read_line()
        await asyncio.sleep(0.3)
        verbose = "$G - $JS - <<- [MSG $JS.API.INFO r 0]" in server.log()
        assert verbose == (flag in ("VV", "DVV"))  # -VV also traces the hub's own traffic
        await raw.close()
    finally:
        server.stop()


async def both(flag: str, tmp: Path) -> None:
    """-DV/-DVV: debug and trace (and -DVV verbose trace)."""
    await debug(flag, tmp)
    await trace(flag, tmp)


async def logtime(flag: str, tmp: Path) -> None:
    server = serve(tmp, f"-{flag}=false")
    try:
        line = server.log().splitlines()[0]
        assert re.fullmatch(r"\[\d+\] \[INF\] Starting jetport.*", line)
    finally:
        server.stop()


async def logtime_utc(flag: str, tmp: Path) -> None:
    env = {"TZ": "Etc/GMT-9"}  # local time nine hours ahead of UTC
    server = serve(tmp, f"-{flag}", env=env)
    try:
        stamp = re.match(r"\[\d+\] (\S+ \S+)\.\d+ ", server.log()).group(1)
        logged = time.mktime(time.strptime(stamp, "%Y/%m/%d %H:%M:%S"))
        assert abs(logged - time.mktime(time.gmtime())) < 120
    finally:
        server.stop()


async def log_file(flag: str, tmp: Path) -> None:
    log = tmp / "l.log"
    proc = subprocess.Popen([*JETPORT, "serve", *LOCAL, f"-{flag}", str(log)], cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not (log.exists() and "Server is ready" in log.read_text()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert out == err == b""


async def log_size_limit(flag: str, tmp: Path) -> None:
    log = tmp / "r.log"
    proc = subprocess.Popen([*JETPORT, "serve", *LOCAL, "-D", "-l", str(log), f"-{flag}",
                             "500"], cwd=tmp)
    try:
        deadline = time.monotonic() + 10
        while not list(tmp.glob("r.log.*")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    (backup,) = [p for p in tmp.glob("r.log.*") if p.stat().st_size > 0][:1]
    assert re.fullmatch(r"r\.log\.\d{4}(\.\d\d){5}\.\d{9}", backup.name)
    assert f'Rotated log, backup saved as "{backup}"' in log.read_text()


async def max_traced_msg_len(flag: str, tmp: Path) -> None:
    server = serve(tmp, "-V", f"-{flag}", "5")
    try:
        raw = await ping(server)
        await raw.send(b"PUB greet 11\r\nhello world\r\nPING\r\n")
        await raw.read_line()
        assert '<<- MSG_PAYLOAD: ["hello..."]' in wait_for(server, "MSG_PAYLOAD")
        await raw.close()
    finally:
        server.stop()


async def pid(flag: str, tmp: Path) -> None:
    pid_file = tmp / "j.pid"
    server = serve(tmp, f"-{flag}", str(pid_file))
    try:
        assert pid_file.read_text() == str(server.proc.pid)
    finally:
        server.stop()
    assert not pid_file.exists()


async def ports_file_dir(flag: str, tmp: Path) -> None:
    server = serve(tmp, f"-{flag}", str(tmp))
    try:
        (ports,) = tmp.glob(f"*_{server.proc.pid}.ports")
        assert json.loads(ports.read_text()) == {"nats": [f"nats://127.0.0.1:{server.port}"]}
    finally:
        server.stop()


async def open_(flag: str, tmp: Path) -> None:
    for p in (4222, 1883, 8080, 8222):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", p)) == 0:
                pytest.skip(reason=f"port {p} unavailable: something else listens there")
    server = serve(tmp, f"-{flag}", local=False)
    try:
        assert listening(4222) == {"0.0.0.0"} and listening(8222) == {"0.0.0.0"}
    finally:
        server.stop()


EFFECTS: dict[str, Callable[[str, Path], Awaitable[None]]] = {
    "a": host, "addr": host, "net": host,
    "p": port, "port": port,
    "n": server_name, "name": server_name, "server_name": server_name,
    "m": http_port, "http_port": http_port,
    "c": config, "config": config,
    "t": config_test,
    "v": version, "version": version,
    "h": help_, "help": help_,
    "js": jetstream, "jetstream": jetstream,
    "sd": store_dir, "store_dir": store_dir,
    "user": user, "pass": password, "auth": token,
    "tls": tls, "tlscert": tls_file, "tlskey": tls_file,
    "tlscacert": tls_verify, "tlsverify": tls_verify,
    "D": debug, "debug": debug,
    "V": trace, "trace": trace, "VV": trace,
    "DV": both, "DVV": both,
    "T": logtime, "logtime": logtime,
    "logtime_utc": logtime_utc,
    "l": log_file, "log": log_file,
    "log_size_limit": log_size_limit,
    "max_traced_msg_len": max_traced_msg_len,
    "P": pid, "pid": pid,
    "ports_file_dir": ports_file_dir,
    "open": open_,
}


def test_every_accepted_flag_has_a_check() -> None:
    assert sorted(EFFECTS) == accepted_flags()


@pytest.mark.parametrize("flag", [pytest.param(f, marks=DEFAULT_PORTS) if EFFECTS[f] is open_
                                  else f for f in sorted(EFFECTS)])
async def test_flag_has_its_effect(flag: str, tmp_path: Path) -> None:
    await EFFECTS[flag](flag, tmp_path)

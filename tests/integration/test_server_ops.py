"""Running the hub as nats-server is run: flags, config, signals, limits, monitoring."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nats
import pytest
from servers import DEFAULT_PORTS, ROOT, RawClient, ServerProcess, free_port


def write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def serve(*args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jetport.core.cli", "serve", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@DEFAULT_PORTS
async def test_embedded_default_opens_default_ports(tmp_path: Path) -> None:
    for port in (4222, 8222):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(reason=f"port {port} unavailable: something else listens there")
    server = ServerProcess([sys.executable, "-m", "jetport.core.cli", "serve"],
                           tmp_path / "emb.log", cwd=tmp_path)
    server.start()
    try:
        log = server.log()
        assert "Listening for client connections on 127.0.0.1:4222" in log
        assert "Starting http monitor on 127.0.0.1:8222" in log
        assert httpx.get("http://127.0.0.1:8222/healthz").json() == {"status": "ok"}
        js = httpx.get("http://127.0.0.1:8222/varz").json()["jetstream"]
        assert js["config"]["store_dir"] == str(tmp_path / "data" / "jetstream")
        assert js["stats"]["accounts"] == 1
        raw = await RawClient.open(4222)
        assert raw.info["jetstream"] is True
        await raw.handshake()
        await raw.close()
        assert (tmp_path / "data" / "jetstream").is_dir()
    finally:
        server.stop()


async def test_flag_spellings_and_server_name(launch, raw_clients) -> None:
    port = free_port()
    hub = launch(f"--port={port}", "-n", "alpha", "-m=-1")
    assert hub.port == port
    raw = await raw_clients(hub.port)
    assert raw.info["server_name"] == "alpha"
    assert raw.info["version"].startswith("2.12.")
    varz = httpx.get(f"http://127.0.0.1:{hub.http_port}/varz").json()
    assert varz["server_name"] == "alpha" and varz["port"] == port


def test_unsupported_flag_fails_clearly() -> None:
    out = serve("--routes", "nats://127.0.0.1:6222")
    assert out.returncode != 0
    assert "routes" in out.stderr and "not supported" in out.stderr


async def test_config_file_and_flag_override(tmp_path: Path, launch, raw_clients) -> None:
    conf = write(tmp_path, "hub.conf", """
        # nats-server style
        server_name: from_file
        max_payload = 2KB
        authorization {
          user: alice
          password: "s3cret"
        }
    """)
    hub = launch("-c", conf, "-n", "from_flag")
    raw = await raw_clients(hub.port)
    assert raw.info["server_name"] == "from_flag"
    assert raw.info["max_payload"] == 2048
    assert raw.info["auth_required"] is True


def test_unknown_config_key_names_file_and_line(tmp_path: Path) -> None:
    conf = write(tmp_path, "bad.conf", "port: 4333\nbogus_key: 1\n")
    out = serve("-c", conf)
    assert out.returncode != 0
    assert f"{conf}:2" in out.stderr
    assert "[FTL]" in out.stderr


def test_port_in_use_is_fatal() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        out = serve("-a", "127.0.0.1", "-p", str(s.getsockname()[1]))
    assert out.returncode == 1
    assert "[FTL]" in out.stderr


def test_pid_and_log_files(tmp_path: Path, launch) -> None:
    pid, logf = tmp_path / "j.pid", tmp_path / "j.log"
    server = ServerProcess(
        [sys.executable, "-m", "jetport.core.cli", "serve", "-a", "127.0.0.1", "-p", "-1",
         "-P", str(pid), "-l", str(logf)], tmp_path / "stdout.log",
    )
    server.log_path = logf
    server.start()
    assert int(pid.read_text()) == server.proc.pid
    assert "Server is ready" in logf.read_text()
    assert server.stop() == 0
    assert "Server Exiting" in logf.read_text()


async def test_sigterm_shuts_down_cleanly(hub) -> None:
    nc = await nats.connect(hub.url, max_reconnect_attempts=0)
    assert hub.stop(signal.SIGTERM) == 0
    assert "Server Exiting" in hub.log()
    await nc.close()


async def test_lame_duck_on_sigusr2(tmp_path: Path, launch, raw_clients) -> None:
    conf = write(tmp_path, "ldm.conf",
                 'lame_duck_duration: "30s"\nlame_duck_grace_period: "300ms"\n')
    hub = launch("-c", conf)
    raw = await raw_clients(hub.port)
    await raw.handshake()
    hub.send_signal(signal.SIGUSR2)
    line = await raw.read_line(timeout=3)
    assert line.startswith(b"INFO ") and json.loads(line[5:])["ldm"] is True
    _, closed = await raw.read_until_closed(timeout=3)
    assert closed
    with pytest.raises(OSError):
        await RawClient.open(hub.port, timeout=0.5)
    assert "Entering lame duck mode" in hub.log()


async def test_monitoring_endpoints(launch, raw_clients) -> None:
    hub = launch("-m", "-1")
    base = f"http://127.0.0.1:{hub.http_port}"
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    raw = await raw_clients(hub.port)
    await raw.handshake(name="probe", lang="raw", version="1")
    await raw.send(b"SUB a 1\r\nSUB b 2\r\nPUB a 5\r\nhello\r\nPING\r\n")
    await raw.read_line()
    assert await raw.read_line() == b"hello"
    varz = httpx.get(f"{base}/varz").json()
    for key in ("server_id", "version", "connections", "in_msgs", "out_msgs", "in_bytes",
                "out_bytes", "mem", "max_payload", "uptime", "subscriptions", "slow_consumers"):
        assert key in varz, key
    assert varz["connections"] == 1 and varz["in_msgs"] == 1 and varz["out_bytes"] == 5
    assert varz["mem"] > 0
    connz = httpx.get(f"{base}/connz?subs=1").json()
    assert connz["num_connections"] == 1
    c = connz["connections"][0]
    assert c["name"] == "probe" and c["lang"] == "raw" and c["subscriptions"] == 2
    assert c["in_msgs"] == 1 and c["out_msgs"] == 1 and c["in_bytes"] == 5
    assert sorted(c["subscriptions_list"]) == ["a", "b"]
    assert httpx.get(f"{base}/connz?sort=bogus").status_code == 400
    paged = httpx.get(f"{base}/connz?offset=1").json()
    assert paged["connections"] == [] and paged["total"] == 1


async def test_max_connections(tmp_path: Path, launch, raw_clients) -> None:
    hub = launch("-c", write(tmp_path, "mc.conf", "max_connections: 2\n"))
    a, b = await raw_clients(hub.port), await raw_clients(hub.port)
    c = await raw_clients(hub.port)
    out, closed = await c.read_until_closed()
    assert b"-ERR 'maximum connections exceeded'" in out and closed
    await a.handshake()
    await b.handshake()


async def test_stale_connection(tmp_path: Path, launch, raw_clients) -> None:
    hub = launch("-c", write(tmp_path, "p.conf", 'ping_interval: "300ms"\nping_max: 2\n'))
    quiet = await raw_clients(hub.port)
    await quiet.handshake()
    out, closed = await quiet.read_until_closed(timeout=3)
    assert out.count(b"PING\r\n") == 2
    assert out.endswith(b"-ERR 'Stale Connection'\r\n") and closed
    # a client that answers stays
    lively = await raw_clients(hub.port)
    await lively.handshake()
    for _ in range(4):
        assert await lively.read_line() == b"PING"
        await lively.send(b"PONG\r\n")


@pytest.mark.differential
def test_bytes_that_never_make_a_connect_do_not_keep_a_client_alive(launch) -> None:
    """Without authorization there is no auth timeout; a client that trickles its CONNECT
    a byte at a time is pinged anyway and found stale, as by nats-server."""
    server = launch.conf('ping_interval: "300ms"\nping_max: 2\n')
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(0.05)
    out, began = b"", time.monotonic()
    trickle = b'CONNECT {"verbose":false,"name":"' + b"s" * 100
    try:
        for byte in trickle:
            sock.sendall(bytes([byte]))
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                break
            out += chunk
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
    assert out.endswith(b"PING\r\nPING\r\n-ERR 'Stale Connection'\r\n"), out[-80:]
    assert time.monotonic() - began < 3


async def test_slow_consumer_is_dropped_and_counted(tmp_path: Path, launch,
                                                    raw_clients) -> None:
    hub = launch("-m", "-1", "-c", write(
        tmp_path, "sc.conf", 'max_pending: 256KB\nmax_payload: 64KB\nwrite_deadline: "500ms"\n'))
    slow = socket.create_connection(("127.0.0.1", hub.port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b'CONNECT {"verbose":false}\r\nSUB big 1\r\nPING\r\n')
    time.sleep(0.2)
    pub = await raw_clients(hub.port)
    await pub.handshake()
    payload = b"x" * 1000
    frame = b"PUB big 1000\r\n" + payload + b"\r\n"
    deadline = time.monotonic() + 10
    varz = {}
    while time.monotonic() < deadline:
        await pub.send(frame * 100)
        varz = httpx.get(f"http://127.0.0.1:{hub.http_port}/varz").json()
        if varz["slow_consumers"]:
            break
    assert varz["slow_consumers"] == 1
    await pub.send(b"PING\r\n")
    assert (await pub.read_until_closed(timeout=1))[0].endswith(b"PONG\r\n")
    assert varz["mem"] < 200 * 1024 * 1024
    slow.close()


async def test_user_password_and_auth_timeout(tmp_path: Path, launch, raw_clients) -> None:
    hub = launch("--user", "alice", "--pass", "pw")
    with pytest.raises(nats.errors.Error):
        await nats.connect(hub.url, user="alice", password="nope", max_reconnect_attempts=0,
                           allow_reconnect=False)
    nc = await nats.connect(hub.url, user="alice", password="pw")
    await nc.close()
    raw = await raw_clients(hub.port)
    assert raw.info["auth_required"] is True
    await raw.send(b"PING\r\n")
    out, closed = await raw.read_until_closed()
    assert out == b"-ERR 'Authorization Violation'\r\n" and closed
    silent = await raw_clients(hub.port)
    out, closed = await silent.read_until_closed(timeout=4)
    assert out == b"-ERR 'Authentication Timeout'\r\n" and closed


async def test_token_auth(launch, raw_clients) -> None:
    hub = launch("--auth", "t0ken")
    nc = await nats.connect(hub.url, token="t0ken")
    await nc.close()
    raw = await raw_clients(hub.port)
    await raw.send(b'CONNECT {"auth_token":"bad"}\r\n')
    out, closed = await raw.read_until_closed()
    assert out == b"-ERR 'Authorization Violation'\r\n" and closed


@pytest.fixture
def certs(tmp_path: Path) -> tuple[str, str]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-nodes", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


async def test_tls(certs: tuple[str, str], launch, raw_clients) -> None:
    import ssl

    cert, key = certs
    hub = launch("--tls", "--tlscert", cert, "--tlskey", key)
    assert (await raw_clients(hub.port)).info["tls_required"] is True
    ctx = ssl.create_default_context(cafile=cert)
    nc = await nats.connect(f"tls://127.0.0.1:{hub.port}", tls=ctx)
    sub = await nc.subscribe("secure")
    await nc.publish("secure", b"s3")
    assert (await sub.next_msg(2)).data == b"s3"
    await nc.close()


async def test_debug_and_trace_logging(launch, raw_clients) -> None:
    hub = launch("-DV")
    raw = await raw_clients(hub.port)
    await raw.handshake()
    await raw.send(b"SUB traced 7\r\nPING\r\n")
    assert await raw.read_line() == b"PONG"
    log = hub.log()
    assert "[DBG]" in log and "Client connection created" in log
    assert "[TRC]" in log and "<<- [SUB traced 7]" in log
    quiet = launch(name="quiet")
    await (await raw_clients(quiet.port)).handshake()
    assert "[TRC]" not in quiet.log() and "[DBG]" not in quiet.log()

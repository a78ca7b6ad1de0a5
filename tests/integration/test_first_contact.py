"""The first hour of a new user: install, start, stop, signals, logs, start-up failures.

The embedded default (``jetport serve`` with no arguments) binds fixed ports, so those
tests skip when something else holds them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import doorcheck
import httpx
import nats
import pytest
from servers import DEFAULT_PORTS, ROOT, ServerProcess, free_port

JETPORT = [sys.executable, "-m", "jetport.core.cli"]
pytestmark = DEFAULT_PORTS

EMBEDDED_PORTS = (doorcheck.NATS_PORT, doorcheck.MQTT_PORT, doorcheck.WS_PORT,
                  doorcheck.HTTP_PORT)


def run(*args: str, cwd: Path = ROOT, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([*JETPORT, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def embedded_ports_free() -> None:
    for port in EMBEDDED_PORTS:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(reason=f"port {port} unavailable: something else listens there")


def listening_addresses(ports: tuple[int, ...]) -> dict[int, set[str]]:
    """Which local addresses listen on ``ports``, from the kernel's socket tables."""
    found: dict[int, set[str]] = {p: set() for p in ports}
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                addr, port_hex = fields[1].split(":")
                port = int(port_hex, 16)
                if fields[3] != "0A" or port not in found:  # 0A: LISTEN
                    continue
                raw = bytes.fromhex(addr)
                if width == 8:
                    found[port].add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found[port].add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def embedded(tmp_path: Path, *args: str) -> ServerProcess:
    embedded_ports_free()
    return ServerProcess([*JETPORT, "serve", *args], tmp_path / "embedded.log",
                         cwd=tmp_path).start()


# -- install ------------------------------------------------------------------------


def test_wheel_holds_only_jetport_and_starts_from_an_empty_venv(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path / "dist"),
         str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    assert "Deprecat" not in build.stdout + build.stderr  # no setuptools deprecation warnings
    (wheel,) = (tmp_path / "dist").glob("jetport-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    outside = [n for n in names if not n.startswith(("jetport/", "jetport-"))]
    assert outside == []
    for package in ("core", "bridges/nats", "bridges/mqtt", "bridges/websocket", "storage",
                    "api", "bench", "core/jetstream"):
        assert f"jetport/{package}/__init__.py" in names
    sources = {str(p.relative_to(ROOT)) for top in ("core", "bridges", "storage", "api", "bench")
               for p in (ROOT / top).rglob("*.py")}
    assert sources == {n.removeprefix("jetport/") for n in names if n.endswith(".py")}
    assert {"jetport/api/static/index.html", "jetport/api/static/js/app.js"} <= set(names)
    meta = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: Apache-2.0" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin/pip"), "install", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    probe = subprocess.run(
        [str(venv / "bin/python"), "-c", "import core"], cwd=tmp_path, capture_output=True,
        text=True)
    assert "No module named 'core'" in probe.stderr
    embedded_ports_free()
    assert doorcheck.check(str(venv / "bin/jetport"), []) == [
        "NATS INFO", "MQTT CONNACK", "NATS INFO over WebSocket", "HTTP 200 /healthz",
        "HTTP 200 / (the console)"]


# -- the embedded default -------------------------------------------------------------


def test_embedded_default_serves_this_machine_only(tmp_path: Path) -> None:
    server = embedded(tmp_path)
    try:
        assert listening_addresses(EMBEDDED_PORTS) == {p: {"127.0.0.1"} for p in EMBEDDED_PORTS}
        lines = [line for line in server.log().splitlines() if "jetport serve --open" in line]
        assert len(lines) == 1 and "[INF] Listening on 127.0.0.1 only" in lines[0]
    finally:
        assert server.stop() == 0


def test_open_flag_serves_every_interface(tmp_path: Path) -> None:
    server = embedded(tmp_path, "--open")
    try:
        assert listening_addresses(EMBEDDED_PORTS) == {p: {"0.0.0.0"} for p in EMBEDDED_PORTS}
        assert "only" not in server.log()
        assert httpx.get(f"http://127.0.0.1:{doorcheck.HTTP_PORT}/varz").json()[
            "jetstream"]["config"]["store_dir"] == str(tmp_path / "data" / "jetstream")
    finally:
        assert server.stop() == 0


def test_open_flag_refuses_other_flags(tmp_path: Path) -> None:
    out = run("serve", "--open", "-p", "4333", cwd=tmp_path)
    assert out.returncode == 1
    assert "-open" in out.stderr and "-a" in out.stderr and "[FTL]" in out.stderr


def test_explicit_flags_keep_nats_server_defaults(tmp_path: Path) -> None:
    port = free_port()
    server = ServerProcess([*JETPORT, "serve", "-p", str(port)], tmp_path / "flags.log",
                           cwd=tmp_path).start()
    try:
        assert listening_addresses((port,)) == {port: {"0.0.0.0"}}
        assert "MQTT" not in server.log() and "JetStream" not in server.log()
    finally:
        server.stop()


# -- nats-server's command lines and signals ------------------------------------------


async def test_nats_server_flags_without_a_command_run_serve(tmp_path: Path) -> None:
    conf = tmp_path / "nats.conf"
    conf.write_text(f'listen: 127.0.0.1:-1\njetstream {{ store_dir: "{tmp_path}/store" }}\n')
    for argv in (["-c", str(conf)], ["-a", "127.0.0.1", "-p", "-1", "-js", "-sd",
                                      str(tmp_path / "s2")]):
        server = ServerProcess([*JETPORT, *argv], tmp_path / "nosub.log", cwd=tmp_path).start()
        try:
            nc = await nats.connect(server.url)
            info = await nc.jetstream().account_info()
            assert info.limits is not None
            await nc.close()
        finally:
            assert server.stop() == 0


def test_version_and_help_without_a_command() -> None:
    assert run("-v").stdout.startswith("jetport ")
    out = run("--help")
    assert out.returncode == 0 and "jetport -c nats.conf" in out.stdout


def wait_in(path: Path, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = path.read_text() if path.exists() else ""
        if text in body:
            return body
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path}: {path.read_text() if path.exists() else ''}")


def start_logging_to(tmp_path: Path, log: Path, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([*JETPORT, "serve", "-a", "127.0.0.1", "-p", "-1", "-l", str(log),
                             *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    wait_in(log, "Server is ready")
    return proc


def test_sigusr1_reopens_the_log_file(tmp_path: Path) -> None:
    log = tmp_path / "hub.log"
    proc = start_logging_to(tmp_path, log)
    try:
        log.rename(tmp_path / "hub.log.1")  # what logrotate does before it signals
        proc.send_signal(signal.SIGUSR1)
        assert "[INF] File log re-opened" in wait_in(log, "File log re-opened")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert "Server Exiting" in log.read_text()
        assert "Server Exiting" not in (tmp_path / "hub.log.1").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigusr1_without_a_log_file_keeps_running(tmp_path: Path) -> None:
    server = ServerProcess([*JETPORT, "serve", "-a", "127.0.0.1", "-p", "-1"],
                           tmp_path / "out.log", cwd=tmp_path).start()
    server.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while "re-open ignored" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "File log re-open ignored, not a file logger" in server.log()
    assert server.stop() == 0


def test_web_server_lines_go_through_the_hub_log(tmp_path: Path) -> None:
    log = tmp_path / "hub.log"
    proc = start_logging_to(tmp_path, log, "-m", "-1", "-D")
    try:
        http_port = int(re.search(r"Starting http monitor on [^:]+:(\d+)",
                                  log.read_text()).group(1))
        with socket.create_connection(("127.0.0.1", http_port)) as s:
            s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            s.recv(1024)
        body = wait_in(log, "Invalid HTTP request")
        line = next(x for x in body.splitlines() if "Invalid HTTP request" in x)
        # the peer's mistake: a debug line, in the hub's format
        assert re.match(r"\[\d+\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6} \[DBG\] ", line)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert err == b""  # nothing bypasses the log file


# -- recovery ---------------------------------------------------------------------------


async def test_restart_reports_what_was_recovered(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    server = ServerProcess([*JETPORT, "serve", "-a", "127.0.0.1", "-p", "-1", "-js", "-sd",
                            store], tmp_path / "rec.log", cwd=tmp_path).start()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    await js.add_stream(name="A", subjects=["a.>"])
    await js.add_stream(name="B", subjects=["b.>"])
    for i in range(30):
        await js.publish(f"a.{i}", b"x" * 10)
    for i in range(12):
        await js.publish(f"b.{i}", b"y" * 10)
    await nc.close()
    server.restart()
    try:
        log = server.log()
        assert re.search(r"Restored 30 messages for stream '\$G > A' in \d+\.\d\ds", log)
        assert re.search(r"Restored 12 messages for stream '\$G > B' in \d+\.\d\ds", log)
        assert re.search(r"Recovered 2 streams, 42 messages \([\d,]+ bytes\) in \d+\.\d\ds", log)
    finally:
        server.stop()


async def test_a_long_recovery_logs_progress(tmp_path: Path, caplog, monkeypatch) -> None:
    """In the hub's own process, with the progress interval made tiny."""
    from jetport.core.config import parse_args
    from jetport.core.hub import Hub
    from jetport.core.jetstream import engine

    store = str(tmp_path / "store")
    server = ServerProcess([*JETPORT, "serve", "-a", "127.0.0.1", "-p", "-1", "-js", "-sd",
                            store], tmp_path / "seed.log", cwd=tmp_path).start()
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    for n in range(3):
        await js.add_stream(name=f"S{n}", subjects=[f"s{n}.>"])
        await js.publish(f"s{n}.x", b"m")
    await nc.close()
    server.stop()

    monkeypatch.setattr(engine, "PROGRESS_INTERVAL", 0.0)
    caplog.set_level("INFO", logger="jetport")
    hub = Hub(parse_args(["-js", "-sd", store]))
    jetstream = engine.JetStream(hub)
    await jetstream.start()
    await jetstream.stop()
    progress = [r.getMessage() for r in caplog.records if "Recovering JetStream" in r.getMessage()]
    assert progress and re.match(r"  Recovering JetStream state: \d+ streams, \d+ messages so far",
                                 progress[0])


# -- start-up failures ------------------------------------------------------------------


def one_fatal_line(out: subprocess.CompletedProcess, *words: str) -> str:
    assert out.returncode == 1
    text = out.stdout + out.stderr
    assert "Traceback" not in text
    fatal = [line for line in text.splitlines() if "[FTL]" in line]
    assert len(fatal) == 1, text
    for word in words:
        assert word in fatal[0], fatal[0]
    return fatal[0]


def test_unknown_flag_is_one_fatal_line() -> None:
    one_fatal_line(run("serve", "--no-such-flag"), "flag provided but not defined: -no-such-flag")


def test_unknown_key_is_one_fatal_line(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text("port: 4222\nno_such_key: 1\n")
    one_fatal_line(run("serve", "-c", str(conf)), f"{conf}:2", 'unknown field "no_such_key"')


def test_port_in_use_is_one_fatal_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        one_fatal_line(run("serve", "-a", "127.0.0.1", "-p", str(port)),
                       "Error listening on port", "address already in use")


def test_store_that_cannot_be_created_is_one_fatal_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    one_fatal_line(run("serve", "-p", "-1", "-js", "-sd", str(blocker / "store")),
                   "Can't start JetStream", "Not a directory")


def test_read_only_store_is_one_fatal_line(tmp_path: Path) -> None:
    mnt = tmp_path / "ro"
    mnt.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mnt)],
                           capture_output=True)
    if mount.returncode != 0:
        pytest.skip(reason=f"read-only mount unavailable here: {mount.stderr!r}")
    try:
        one_fatal_line(run("serve", "-p", "-1", "-js", "-sd", str(mnt / "store")),
                       "Can't start JetStream", "Read-only file system")
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


async def test_corrupt_store_is_one_fatal_line_and_is_kept(tmp_path: Path) -> None:
    store = tmp_path / "store"
    server = ServerProcess([*JETPORT, "serve", "-a", "127.0.0.1", "-p", "-1", "-js", "-sd",
                            str(store)], tmp_path / "c.log", cwd=tmp_path).start()
    nc = await nats.connect(server.url)
    await nc.jetstream().add_stream(name="KEEP", subjects=["k"])
    await nc.jetstream().publish("k", b"precious")
    await nc.close()
    server.stop()
    db = store / "jetstream" / "$G" / "jetport.db"
    damaged = bytearray(db.read_bytes())
    damaged[:100] = b"\xde\xad" * 50  # the header SQLite recognises its files by
    db.write_bytes(bytes(damaged))
    one_fatal_line(run("serve", "-p", "-1", "-js", "-sd", str(store)),
                   "Can't start JetStream", str(db), "not a database")
    assert db.read_bytes() == bytes(damaged)


# -- durability setting -----------------------------------------------------------------


def test_sync_always_is_reported_and_other_periods_refused(tmp_path: Path, launch) -> None:
    conf = tmp_path / "sync.conf"
    conf.write_text(f'jetstream {{ store_dir: "{tmp_path}/s", sync_interval: always }}\n')
    hub = launch("-c", str(conf), "-m", "-1")
    varz = httpx.get(f"http://127.0.0.1:{hub.http_port}/varz").json()
    assert varz["jetstream"]["config"]["sync_always"] is True
    conf.write_text(f'jetstream {{ store_dir: "{tmp_path}/s", sync_interval: "2m" }}\n')
    one_fatal_line(run("serve", "-c", str(conf)), f"{conf}:1", "always")


def test_ports_file_lists_every_door(tmp_path: Path) -> None:
    conf = tmp_path / "doors.conf"
    conf.write_text("listen: 127.0.0.1:-1\nhttp: 127.0.0.1:-1\nmqtt { port: -1 }\n"
                    f'jetstream {{ store_dir: "{tmp_path}/s" }}\n'
                    "websocket { port: -1, no_tls: true }\n")
    server = ServerProcess([*JETPORT, "serve", "-c", str(conf), "--ports_file_dir",
                            str(tmp_path)], tmp_path / "p.log", cwd=tmp_path).start()
    try:
        (ports_file,) = tmp_path.glob("*.ports")
        assert ports_file.name == f"cli.py_{server.proc.pid}.ports" or ports_file.name.endswith(
            f"_{server.proc.pid}.ports")
        ports = json.loads(ports_file.read_text())
        assert ports["nats"] == [f"nats://127.0.0.1:{server.port}"]
        assert ports["monitoring"] == [f"http://127.0.0.1:{server.http_port}"]
        assert ports["mqtt"] == [f"mqtt://127.0.0.1:{server.mqtt_port}"]
        assert ports["websocket"][0].startswith("ws://127.0.0.1:")
    finally:
        server.stop()
    assert not list(tmp_path.glob("*.ports"))  # removed on shutdown, as nats-server does
    assert os.path.exists(conf)

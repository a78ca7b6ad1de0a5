"""Abuse campaign: hostile clients on every door of one hub.

    python tests/campaigns/abuse.py [--seed S] [--budget SECONDS] [--slow-clients 50]
                                    [--slow-cap 60] [--flood-seconds 5] [--nofile 200]
                                    [--only slowloris,flood,slow-consumers,fd-exhaustion]

Four scenarios, each watched from the outside (/proc/<pid>/status VmRSS, /proc/<pid>/fd,
/varz, the hub's log) while normal clients on every door keep checking that the hub
serves them:

* **slowloris**: per door, many connections that send their first bytes (NATS CONNECT,
  MQTT CONNECT, HTTP request headers, WebSocket upgrade request) one byte at a time.  Each
  must be closed by one of the hub's timeouts before ``--slow-cap`` seconds; one still
  open then is a failure (the table says which door keeps them and for how long).
* **flood**: per door, ``--flood-seconds`` of connects as fast as the client can make
  them, half closed at once with a reset, half after the protocol's handshake.  The hub
  must still serve, and its descriptors and /varz connections come back to the baseline.
* **slow consumers**: a subscriber that stops reading on every door (NATS, NATS over
  WebSocket, MQTT QoS 0 and QoS 1, SSE) while a publisher floods 8 KB messages: each is
  cut off as a slow consumer (/varz ``slow_consumers``), the publisher keeps its pace and
  a normal subscriber gets every message; the hub's RSS before, at the peak and after
  they left (with /varz ``mem``), and whether the memory came back.
* **fd exhaustion**: a second hub under ``prlimit --nofile=N:N``; connections until accept
  fails.  Clients already connected keep working (pub/sub, JetStream, an HTTP keep-alive
  connection); new ones wait or are refused; once descriptors are freed new clients on
  every door connect again.  The hub's log lines meanwhile are counted: a line per failed
  accept (a flood) is a failure.

The same seed gives the same schedule.  A Markdown table at the end; exit status 1 on any
failure, each printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import statistics
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import nats

from campaigns.harness import (
    NO_TLS_WARNING,
    Hub,
    error_lines,
    finish,
    mb,
    remove_workdir,
    table,
    workdir,
)
from jetport.bench.mqtt import connect_frame, publish_frame, subscribe_frame

DEFAULT_SEED = 20241207
DOORS = ("nats", "mqtt", "ws", "http")
#: ``ping_interval`` is short so that a NATS client that never completes its CONNECT is
#: found stale within the slowloris cap: without authorization there is no auth timeout,
#: and nats-server, like Jetport, ends such a client only through unanswered pings.
CONF = """
server_name: abuse
ping_interval: "3s"
http: "127.0.0.1:{http}"
mqtt {{ port: {mqtt} }}
websocket {{ port: {ws}, no_tls: true }}
jetstream {{ store_dir: "{store}" }}
"""
PAYLOAD = b"p" * 8000
#: Longest a publisher may wait for one burst of 64 messages while readers stall
#: (seconds).  nats-server 2.15 on this machine: 0.06 s, and it cuts such readers at
#: max_pending; a stall as long as the write deadline is a publisher stopped.
MAX_STALL = 2.0
WS_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


# -- protocol bytes ------------------------------------------------------------------------

def ws_upgrade(path: str = "/", extra: bytes = b"") -> bytes:
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: " + WS_KEY + b"\r\n"
            b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n")


def ws_frame(data: bytes) -> bytes:
    """A masked binary frame (all-zero mask) as a client sends it."""
    n = len(data)
    head = bytes([0x82, 0x80 | n]) if n < 126 else bytes([0x82, 0x80 | 126]) + \
        struct.pack(">H", n)
    return head + b"\0\0\0\0" + data


def slow_bytes(door: str) -> bytes:
    """A first message long enough that, one byte a second, it never completes within
    any plausible timeout: the client is as slow as it can be while staying valid."""
    pad = b"s" * 400
    if door == "nats":
        return b'CONNECT {"verbose":false,"name":"' + pad + b'"}\r\n'
    if door == "mqtt":
        return connect_frame(b"slow-" + pad, keepalive=60)
    if door == "http":
        return b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + pad + b"\r\n\r\n"
    return ws_upgrade("/", b"X-Slow: " + pad + b"\r\n")


# -- the hub from outside ------------------------------------------------------------------

class Watch:
    """Samples the hub's RSS and descriptors every 0.2 s (and /varz mem every second)
    while a scenario runs."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.rss: list[int] = []
        self.fds: list[int] = []
        self.varz_mem: list[int] = []
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        n = 0
        # no keep-alive: a connection held open would be a descriptor of the hub's
        async with httpx.AsyncClient(base_url=self.hub.http_url, timeout=2,
                                     limits=httpx.Limits(max_keepalive_connections=0)) as http:
            while True:
                with contextlib.suppress(OSError):
                    self.rss.append(self.hub.rss())
                    self.fds.append(self.hub.fds())
                if n % 5 == 0:
                    with contextlib.suppress(Exception):
                        self.varz_mem.append((await http.get("/varz")).json()["mem"])
                n += 1
                await asyncio.sleep(0.2)

    def __enter__(self) -> Watch:
        self.before_rss, self.before_fds = self.hub.rss(), self.hub.fds()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._task is not None
        self._task.cancel()

    def after(self) -> None:
        self.after_rss, self.after_fds = self.hub.rss(), self.hub.fds()

    def cells(self) -> list[str]:
        peak_rss = max([self.before_rss, *self.rss])
        peak_fds = max([self.before_fds, *self.fds])
        return [f"{mb(self.before_rss)} / {mb(peak_rss)} / {mb(self.after_rss)}",
                f"{self.before_fds} / {peak_fds} / {self.after_fds}"]


async def varz(hub: Hub) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=hub.http_url, timeout=5) as http:
        return (await http.get("/varz")).json()


async def read_some(reader: asyncio.StreamReader, n: int, timeout: float) -> bytes:
    return await asyncio.wait_for(reader.read(n), timeout)


async def probe(hub: Hub, door: str, timeout: float = 5.0) -> float:
    """One normal client's round trip on ``door`` over a new connection; its seconds.
    Raises when the door does not serve it."""
    began = time.monotonic()
    if door in ("nats", "ws"):
        nc = await nats.connect(hub.url if door == "nats" else hub.ws_url, connect_timeout=timeout,
                                allow_reconnect=False, max_reconnect_attempts=0,
                                error_cb=_quiet, disconnected_cb=_quiet, closed_cb=_quiet)
        try:
            sub = await nc.subscribe(f"probe.{door}")
            await nc.publish(f"probe.{door}", b"ping")
            await sub.next_msg(timeout)
        finally:
            await nc.close()
    elif door == "mqtt":
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", hub.mqtt_port), timeout)
        try:
            writer.write(connect_frame(b"probe-%d" % random.getrandbits(32), keepalive=60))
            connack = await asyncio.wait_for(reader.readexactly(4), timeout)
            assert connack == b"\x20\x02\x00\x00", connack
            writer.write(publish_frame(b"probe/mqtt", b"ping", qos=1, pid=7))
            assert await asyncio.wait_for(reader.readexactly(4), timeout) == b"\x40\x02\x00\x07"
            writer.write(b"\xe0\x00")
        finally:
            writer.close()
    else:
        async with httpx.AsyncClient(base_url=hub.http_url, timeout=timeout) as http:
            resp = await http.get("/healthz")
            assert resp.status_code == 200, resp.status_code
    return time.monotonic() - began


async def _quiet(*_: Any) -> None:
    pass


@dataclass
class Probes:
    """Normal clients checking every door once a second during a scenario."""

    ok: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    worst: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    async def run(self, hub: Hub, stop: asyncio.Event, doors: tuple[str, ...] = DOORS,
                  every: float = 1.0) -> None:
        while not stop.is_set():
            for door in doors:
                try:
                    took = await probe(hub, door)
                except Exception as exc:  # noqa: BLE001 - counted and shown
                    self.failed[door] += 1
                    self.errors.append(f"{door}: {exc!r}")
                    continue
                self.ok[door] += 1
                self.worst[door] = max(self.worst.get(door, 0.0), took)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    def summary(self) -> str:
        total_ok, total_failed = sum(self.ok.values()), sum(self.failed.values())
        worst = max(self.worst.values(), default=0.0)
        return f"normal clients {total_ok}/{total_ok + total_failed} served (slowest {worst:.2f} s)"


# -- results -------------------------------------------------------------------------------

@dataclass
class Row:
    scenario: str
    clients: str
    result: str
    rss: str = "-"
    fds: str = "-"
    log: str = "-"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rss_after: list[int] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def new_log_lines(hub: Hub, since: int) -> list[str]:
    text = hub.log_path.read_bytes()[since:].decode(errors="replace")
    return [line for line in text.splitlines() if line and NO_TLS_WARNING not in line]


def describe_lines(lines: list[str], limit: int = 3) -> str:
    if not lines:
        return "0"
    kinds = Counter(line.split("] ", 2)[-1][:90] if "] " in line else line[:90]
                    for line in lines)
    shown = "; ".join(f"{n} x `{k}`" for k, n in kinds.most_common(limit))
    return f"{len(lines)}: {shown}"


# -- (a) slowloris -------------------------------------------------------------------------

def door_port(hub: Hub, door: str) -> int:
    return {"nats": hub.nats_port, "mqtt": hub.mqtt_port, "ws": hub.ws_port,
            "http": hub.http_port}[door]


async def slow_client(port: int, data: bytes, interval: float, cap: float,
                      delay: float) -> float | None:
    """Send ``data`` a byte every ``interval`` s; the seconds until the hub closed the
    connection, or None if it was still open after ``cap`` seconds."""
    await asyncio.sleep(delay)
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = loop.time()

    async def until_eof() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while await reader.read(65536):
                pass

    eof = loop.create_task(until_eof())
    i = 0
    try:
        while loop.time() - began < cap:
            if i < len(data):
                try:
                    writer.write(data[i:i + 1])
                except (ConnectionError, OSError):
                    break
                i += 1
            done, _ = await asyncio.wait([eof], timeout=min(interval, cap - (loop.time() - began)))
            if done:
                break
        if eof.done():
            return loop.time() - began
        return None
    finally:
        eof.cancel()
        writer.transport.abort()


async def slowloris(hub: Hub, report: Report, n: int, interval: float, cap: float,
                    rng: random.Random) -> None:
    since = hub.log_size()
    stop = asyncio.Event()
    probes = Probes()
    with Watch(hub) as watch:
        probing = asyncio.create_task(probes.run(hub, stop))
        tasks = {door: [asyncio.create_task(slow_client(door_port(hub, door), slow_bytes(door),
                                                          interval, cap, rng.uniform(0, 1)))
                        for _ in range(n)] for door in DOORS}
        results = {door: await asyncio.gather(*ts, return_exceptions=True)
                   for door, ts in tasks.items()}
        stop.set()
        await probing
        await asyncio.sleep(1)
        watch.after()
    lines = new_log_lines(hub, since)
    for door in DOORS:
        got = results[door]
        errors = [r for r in got if isinstance(r, BaseException)]
        closed = [r for r in got if isinstance(r, float)]
        still = [r for r in got if r is None]
        if closed:
            result = (f"{len(closed)} closed by the hub after {statistics.median(closed):.1f} s "
                      f"(max {max(closed):.1f} s)")
        else:
            result = "none closed by the hub"
        if still:
            result += f"; **{len(still)} still open after {cap:.0f} s**"
            report.failures.append(
                f"slowloris {door}: {len(still)} of {n} connections sending their first bytes "
                f"one per {interval:g} s still open after {cap:.0f} s")
        if errors:
            result += f"; {len(errors)} could not connect ({errors[0]!r})"
            report.failures.append(f"slowloris {door}: {len(errors)} connects failed: "
                                   f"{errors[0]!r}")
        if door == DOORS[-1]:
            result += f"; {probes.summary()}"
        report.rows.append(Row(f"slowloris {door}", f"{n}", result, *watch.cells(),
                               describe_lines(lines) if door == DOORS[-1] else ""))
    if probes.failed:
        report.failures.append(f"slowloris: normal clients refused: {probes.errors[:3]}")
    problems = error_lines(lines)
    if problems:
        report.failures.append(f"slowloris: {len(problems)} [ERR]/traceback lines, e.g. "
                               f"{problems[0]}")


# -- (b) connect floods --------------------------------------------------------------------

async def handshake(hub: Hub, door: str, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
    """The protocol's opening on a fresh connection, then a polite end."""
    if door == "nats":
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
        assert line.startswith(b"INFO ")
        writer.write(b'CONNECT {"verbose":false}\r\nPING\r\n')
        assert b"PONG" in await asyncio.wait_for(reader.readuntil(b"PONG\r\n"), 5)
    elif door == "mqtt":
        writer.write(connect_frame(b"flood-%d" % random.getrandbits(40), keepalive=60))
        assert await asyncio.wait_for(reader.readexactly(4), 5) == b"\x20\x02\x00\x00"
        writer.write(b"\xe0\x00")
    elif door == "ws":
        writer.write(ws_upgrade("/"))
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b" 101 " in head.split(b"\r\n", 1)[0], head[:40]
        writer.write(ws_frame(b'CONNECT {"verbose":false}\r\nPING\r\n'))
        got = b""
        while b"PONG" not in got:
            chunk = await asyncio.wait_for(reader.read(4096), 5)
            assert chunk, "closed"
            got += chunk
    else:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
        assert b" 200 " in head, head
    await writer.drain()


async def flood_door(hub: Hub, door: str, seconds: float, workers: int
                     ) -> tuple[Counter, list[str]]:
    """Connect as fast as possible for ``seconds``: even workers reset at once, odd ones
    complete the handshake first.  Counts per outcome, and a few error texts."""
    counts: Counter = Counter()
    errors: list[str] = []
    port = door_port(hub, door)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def worker(k: int) -> None:
        polite = k % 2 == 1
        while loop.time() < end:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), 5)
            except (OSError, TimeoutError) as exc:
                counts["connect failed"] += 1
                if len(errors) < 3:
                    errors.append(repr(exc))
                await asyncio.sleep(0.01)
                continue
            try:
                if polite:
                    await handshake(hub, door, reader, writer)
                    counts["handshakes"] += 1
                else:
                    counts["resets"] += 1
            except Exception as exc:  # noqa: BLE001 - counted
                counts["handshake failed"] += 1
                if len(errors) < 3:
                    errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                sock = writer.get_extra_info("socket")
                if sock is not None and not polite:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                writer.transport.abort() if not polite else writer.close()

    await asyncio.gather(*(worker(k) for k in range(workers)))
    return counts, errors


async def settle(hub: Hub, fds: int, connections: int, timeout: float) -> tuple[float, int, int]:
    """Wait until the hub's descriptors and /varz connections are back at (or below) the
    baseline; the seconds it took (or ``timeout``) and the last values."""
    began = time.monotonic()
    now_fds, now_conns = hub.fds(), -1
    while time.monotonic() - began < timeout:
        now_fds = hub.fds()
        now_conns = (await varz(hub))["connections"]
        if now_fds <= fds and now_conns <= connections:
            break
        await asyncio.sleep(0.2)
    return time.monotonic() - began, now_fds, now_conns


async def floods(hub: Hub, report: Report, seconds: float, workers: int) -> None:
    for door in DOORS:
        since = hub.log_size()
        base = await varz(hub)
        with Watch(hub) as watch:
            began = time.monotonic()
            counts, errors = await flood_door(hub, door, seconds, workers)
            took = time.monotonic() - began
            waited, fds, conns = await settle(hub, watch.before_fds, base["connections"], 30)
            watch.after()
        after = await varz(hub)
        served = []
        for d in DOORS:
            try:
                await probe(hub, d)
                served.append(d)
            except Exception as exc:  # noqa: BLE001
                report.failures.append(f"flood {door}: {d} door does not serve afterwards: "
                                       f"{exc!r}")
        total = counts["resets"] + counts["handshakes"]
        lines = new_log_lines(hub, since)
        result = (f"{total / took:,.0f} connects/s ({counts['resets']:,} reset at once, "
                  f"{counts['handshakes']:,} after the handshake"
                  + "".join(f", {counts[k]:,} {k}" for k in ("connect failed", "handshake failed")
                            if counts[k])
                  + f"); back to baseline in {waited:.1f} s; doors serving: {len(served)}/4")
        if counts["connect failed"] or counts["handshake failed"]:
            result += f" ({errors[0]})"
        if fds > watch.before_fds or conns > base["connections"]:
            report.failures.append(
                f"flood {door}: descriptors {fds} (baseline {watch.before_fds}), /varz "
                f"connections {conns} (baseline {base['connections']}) 30 s after the flood")
        if counts["handshake failed"]:
            report.failures.append(f"flood {door}: {counts['handshake failed']} handshakes "
                                   f"failed, e.g. {errors[:2]}")
        problems = error_lines(lines)
        if problems:
            report.failures.append(f"flood {door}: {len(problems)} [ERR]/traceback lines, e.g. "
                                   f"{problems[0]}")
        report.notes.append(f"flood {door}: /varz total_connections "
                            f"{base.get('total_connections', '?')} -> "
                            f"{after.get('total_connections', '?')}")
        report.rows.append(Row(f"connect flood {door}", f"{workers} concurrent, {total:,} conns",
                               result, *watch.cells(), describe_lines(lines)))


# -- (c) subscribers that stop reading -----------------------------------------------------

def stalled(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(5)
    return sock


def recv_until(sock: socket.socket, marker: bytes) -> bytes:
    got = b""
    while marker not in got:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before {marker!r}: {got[-80:]!r}")
        got += chunk
    return got


def stalled_subscribers(hub: Hub) -> dict[str, socket.socket]:
    """One subscriber per door on flood.x that reads nothing after subscribing."""
    out = {}
    s = stalled(hub.nats_port)
    recv_until(s, b"\r\n")
    s.sendall(b'CONNECT {"verbose":false,"headers":true}\r\nSUB flood.x 1\r\nPING\r\n')
    recv_until(s, b"PONG")
    out["NATS"] = s
    s = stalled(hub.ws_port)
    s.sendall(ws_upgrade("/"))
    recv_until(s, b"\r\n\r\n")
    s.sendall(ws_frame(b'CONNECT {"verbose":false,"headers":true}\r\nSUB flood.x 1\r\nPING\r\n'))
    recv_until(s, b"PONG")
    out["WebSocket"] = s
    for qos in (0, 1):
        s = stalled(hub.mqtt_port)
        s.sendall(connect_frame(b"stalled-qos%d" % qos, keepalive=60))
        recv_until(s, b"\x20\x02\x00\x00")
        s.sendall(subscribe_frame(b"flood/x", qos, 1))
        recv_until(s, b"\x90\x03\x00\x01")
        out[f"MQTT QoS {qos}"] = s
    s = stalled(hub.http_port)
    s.sendall(b"GET /v1/subscribe/flood.x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    recv_until(s, b"\r\n\r\n")
    out["SSE"] = s
    return out


def cut_off(sock: socket.socket, timeout: float = 20.0) -> bool:
    """Drain what the socket still holds: True once the hub has closed it."""
    sock.settimeout(timeout)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    try:
        while sock.recv(1 << 20):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


async def slow_consumers(hub: Hub, report: Report, max_seconds: float, label: str = "",
                         settle: float = 10.0) -> None:
    since = hub.log_size()
    base = await varz(hub)
    opts_pending = base.get("max_pending", 0)
    witness_nc = await nats.connect(hub.url, error_cb=_quiet)
    got = 0

    async def count(msg: Any) -> None:
        nonlocal got
        got += 1

    await witness_nc.subscribe("flood.x", cb=count, pending_bytes_limit=-1, pending_msgs_limit=-1)
    await witness_nc.flush()
    pub = await nats.connect(hub.url, error_cb=_quiet)
    headers = {"Nmqtt-Pub": "1"}  # MQTT QoS 1 subscribers get it at QoS 1
    sent = 0
    stalls: list[float] = []

    async def burst() -> None:
        nonlocal sent
        began = time.monotonic()
        for _ in range(64):
            await pub.publish("flood.x", PAYLOAD, headers=headers)
        await pub.flush(timeout=60)
        sent += 64
        stalls.append(time.monotonic() - began)

    async def pace(seconds: float) -> float:
        began, first = time.monotonic(), sent
        while time.monotonic() - began < seconds:
            await burst()
        return (sent - first) * len(PAYLOAD) / (time.monotonic() - began)

    rss_before = hub.rss()
    mem_before = base["mem"]
    with Watch(hub) as watch:
        baseline = await pace(2.0)
        stalls.clear()
        socks = await asyncio.to_thread(stalled_subscribers, hub)
        began = time.monotonic()
        during_sent = sent
        while time.monotonic() - began < max_seconds:
            for _ in range(8):
                await burst()
            if (await varz(hub))["slow_consumers"] - base["slow_consumers"] >= len(socks):
                break
        during = (sent - during_sent) * len(PAYLOAD) / (time.monotonic() - began)
        flooded_s = time.monotonic() - began
        worst_stall = max(stalls, default=0.0)
        afterwards = await pace(2.0)
        await pub.publish("flood.x", b"last")
        await pub.flush()
        cut = {name: await asyncio.to_thread(cut_off, s) for name, s in socks.items()}
        for s in socks.values():
            s.close()
        deadline = time.monotonic() + 30
        while got < sent + 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await pub.close()
        await witness_nc.close()
        await asyncio.sleep(settle)
        watch.after()
        peak_rss = max([rss_before, *watch.rss, *watch.varz_mem])
    end = await varz(hub)
    peak_mem = max(watch.varz_mem, default=end["mem"])
    counted = end["slow_consumers"] - base["slow_consumers"]
    lines = new_log_lines(hub, since)
    grew, kept = peak_rss - rss_before, watch.after_rss - rss_before
    report.rss_after.append(watch.after_rss)
    returned = kept <= max(16 << 20, grew // 4)
    result = (f"{sum(cut.values())}/{len(cut)} cut off ("
              + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in cut.items())
              + f"), /varz slow_consumers +{counted}; {mb(sent * len(PAYLOAD))} MB published in "
              f"{flooded_s:.1f} s of flood; publisher {mb(baseline)} MB/s alone, {mb(during)} "
              f"MB/s with the stalled readers, {mb(afterwards)} MB/s after; longest 64-message "
              f"burst {worst_stall:.2f} s; witness got {got}/{sent + 1}; RSS {mb(rss_before)} → "
              f"peak {mb(peak_rss)} → {mb(watch.after_rss)} MB {settle:g} s after they left "
              f"(/varz mem {mb(mem_before)} → {mb(peak_mem)} → {mb(end['mem'])}): memory "
              f"{'returned' if returned else 'NOT returned'} ({mb(kept)} of {mb(grew)} MB "
              f"growth kept)")
    report.rows.append(Row(f"non-reading subscribers{label}",
                           f"{len(socks)} stalled + 1 witness + "
                           f"1 publisher (max_pending {mb(opts_pending)} MB)", result,
                           *watch.cells(), describe_lines(lines)))
    for name, ok in cut.items():
        if not ok:
            report.failures.append(f"slow consumers: the stalled {name} subscriber was not cut off")
    if counted < len(socks):
        report.failures.append(f"slow consumers: /varz counts {counted} slow consumers, "
                               f"{len(socks)} expected")
    if got < sent + 1:
        report.failures.append(f"slow consumers: the normal subscriber got {got} of {sent + 1}")
    if afterwards < baseline / 2:
        report.failures.append(f"slow consumers: publisher at {mb(afterwards)} MB/s after the "
                               f"cut, {mb(baseline)} MB/s before")
    if worst_stall > MAX_STALL:
        report.failures.append(
            f"slow consumers: the publisher was held up to {worst_stall:.1f} s for one burst "
            f"of 64 messages (write_deadline is {base.get('write_deadline', 0) / 1e9:g} s); "
            f"{mb(during)} MB/s with the stalled readers against {mb(baseline)} MB/s alone")
    if not returned:
        report.notes.append(f"slow consumers: RSS kept {mb(kept)} MB of {mb(grew)} MB growth "
                            f"{settle:g} s after the stalled readers left")
    problems = error_lines(lines)
    if problems:
        report.failures.append(f"slow consumers: {len(problems)} [ERR]/traceback lines, e.g. "
                               f"{problems[0]}")


async def slow_consumers_rounds(hub: Hub, report: Report, max_seconds: float,
                                rounds: int, settle: float) -> None:
    """The scenario ``rounds`` times on the same hub: memory kept after the first round
    that does not grow in the next ones is the allocator's, not a leak."""
    start = hub.rss()
    for n in range(1, rounds + 1):
        await slow_consumers(hub, report, max_seconds, f" (round {n})" if rounds > 1 else "",
                             settle)
    if rounds > 1:
        afters = report.rss_after[-rounds:]
        report.notes.append("slow consumers: RSS " + mb(start) + " MB at the start, after each "
                            "round " + ", ".join(mb(a) for a in afters) + " MB")
        if afters[-1] - afters[0] > max(32 << 20, (afters[0] - start) // 2):
            report.failures.append(
                f"slow consumers: RSS after the last round {mb(afters[-1])} MB, after the first "
                f"{mb(afters[0])} MB: memory grows with each round of slow consumers")


# -- (d) descriptor exhaustion -------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


async def raw_nats(port: int, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A NATS connection through INFO, CONNECT and PONG; raises when not served in time."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout)
        if not line.startswith(b"INFO "):
            raise ConnectionError(line[:60])
        writer.write(b'CONNECT {"verbose":false}\r\nPING\r\n')
        await asyncio.wait_for(reader.readuntil(b"PONG\r\n"), timeout)
    except BaseException:
        writer.transport.abort()
        raise
    return reader, writer


async def attempt(hub: Hub, door: str, timeout: float) -> str:
    """A new client on ``door`` doing the protocol's opening on a raw connection:
    "served", "waits" (no answer in time) or "refused (how)"."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", door_port(hub, door)), timeout)
    except TimeoutError:
        return "waits (no TCP accept)"
    except OSError as exc:
        return f"refused ({type(exc).__name__})"
    try:
        await asyncio.wait_for(handshake(hub, door, reader, writer), timeout)
        return "served"
    except TimeoutError:
        return "waits"
    except (ConnectionResetError, BrokenPipeError):
        return "refused (reset)"
    except (asyncio.IncompleteReadError, AssertionError):
        return "refused (closed)"
    except Exception as exc:  # noqa: BLE001
        return f"refused ({type(exc).__name__})"
    finally:
        writer.transport.abort()


async def fd_exhaustion(base: Path, report: Report, nofile: int, conf: str,
                        full_watch: float) -> None:
    dir = base / "nofile"
    dir.mkdir()
    hub = Hub.make(dir, conf, prefix=["prlimit", f"--nofile={nofile}:{nofile}"])
    hub.start()
    try:
        await _fd_exhaustion(hub, report, nofile, full_watch)
    finally:
        rc = hub.stop()
        if rc != 0:
            report.failures.append(f"fd exhaustion: hub exit status {rc} on SIGTERM")


async def _fd_exhaustion(hub: Hub, report: Report, nofile: int, full_watch: float) -> None:
    old = await nats.connect(hub.url, error_cb=_quiet)
    js = old.jetstream(timeout=5)
    await js.add_stream(name="FD", subjects=["fd.>"])
    inbox = await old.subscribe("fd.live")
    keepalive = httpx.AsyncClient(base_url=hub.http_url, timeout=5)
    await keepalive.get("/healthz")
    with Watch(hub) as watch:
        opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        refused_at = None
        while len(opened) < nofile * 2:
            try:
                opened.append(await raw_nats(hub.nats_port, 2.0))
            except asyncio.IncompleteReadError:
                refused_at = (len(opened), "was accepted and closed at once")
                break
            except TimeoutError:
                refused_at = (len(opened), "got no INFO within 2 s")
                break
            except (OSError, ConnectionError) as exc:
                refused_at = (len(opened), f"failed: {exc!r}")
                break
        full_fds = hub.fds()
        since = hub.log_size()
        cpu0, t0 = cpu_seconds(hub.pid), time.monotonic()
        # clients already connected keep working
        checks = {}
        try:
            await old.publish("fd.live", b"still here")
            checks["pub/sub"] = (await inbox.next_msg(5)).data == b"still here"
        except Exception as exc:  # noqa: BLE001
            checks["pub/sub"] = False
            report.failures.append(f"fd exhaustion: pub/sub of a connected client: {exc!r}")
        try:
            checks["JetStream publish"] = (await js.publish("fd.x", b"stored")).seq >= 1
        except Exception as exc:  # noqa: BLE001
            checks["JetStream publish"] = False
            report.failures.append(f"fd exhaustion: JetStream publish: {exc!r}")
        try:
            checks["HTTP keep-alive"] = (await keepalive.get("/varz")).status_code == 200
        except Exception as exc:  # noqa: BLE001
            checks["HTTP keep-alive"] = False
            report.failures.append(f"fd exhaustion: existing HTTP connection: {exc!r}")
        r1, w1 = opened[0]
        w1.write(b"PING\r\n")
        try:
            await asyncio.wait_for(r1.readuntil(b"PONG\r\n"), 5)
            checks["raw PING"] = True
        except Exception:  # noqa: BLE001
            checks["raw PING"] = False
        new = {door: await attempt(hub, door, 2.0) for door in DOORS}
        await asyncio.sleep(max(0.0, full_watch - (time.monotonic() - t0)))
        busy = (cpu_seconds(hub.pid) - cpu0) / (time.monotonic() - t0)
        during = new_log_lines(hub, since)
        # free half of the descriptors: new clients must get in again
        for _, w in opened[: len(opened) // 2]:
            w.transport.abort()
        freed_at = time.monotonic()
        back: dict[str, float | None] = {}
        for door in DOORS:
            while time.monotonic() - freed_at < 20:
                if await attempt(hub, door, 2.0) == "served":
                    back[door] = time.monotonic() - freed_at
                    break
                await asyncio.sleep(0.2)
            else:
                back[door] = None
        for _, w in opened[len(opened) // 2:]:
            w.transport.abort()
        await asyncio.sleep(2)
        watch.after()
    await keepalive.aclose()
    await old.close()
    after_lines = new_log_lines(hub, since)
    failed_new = [d for d, v in back.items() if v is None]
    result = (f"{len(opened)} NATS connections accepted, then "
              + (f"the next one {refused_at[1]}" if refused_at else "no refusal")
              + f" at {full_fds}/{nofile} descriptors; connected clients: "
              + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in checks.items())
              + "; new clients while full: " + ", ".join(f"{d} {v}" for d, v in new.items())
              + f"; hub CPU while full {busy:.0%}; after freeing half: "
              + ", ".join(f"{d} in {v:.1f} s" if v is not None else f"{d} NEVER"
                          for d, v in back.items()))
    log_cell = (f"{len(during)} in the first {time.monotonic() - t0:.0f} s full "
                f"({describe_lines(during)}); {len(after_lines)} in all")
    report.rows.append(Row(f"fd exhaustion (nofile {nofile})", f"{len(opened)} + 4 new",
                           result, *watch.cells(), log_cell))
    if refused_at is None:
        report.failures.append(f"fd exhaustion: {len(opened)} connections and no refusal "
                               f"with nofile {nofile}")
    if failed_new:
        report.failures.append(f"fd exhaustion: new clients on {failed_new} never got in after "
                               f"half the descriptors were freed")
    if any(v == "served" for v in new.values()) and hub.fds() >= nofile:
        report.notes.append("fd exhaustion: a new client was served while the hub was full")
    if not after_lines:
        report.notes.append("fd exhaustion: the hub logs nothing while it turns clients away "
                            "for want of descriptors (nats-server logs `[ERR] Temporary Client "
                            "Accept Error(... too many open files), sleeping Nms`, backing off)")
    if len(during) > 20:
        report.failures.append(f"fd exhaustion: {len(during)} log lines in {full_watch:g} s "
                               f"while the "
                               f"descriptors were exhausted: {describe_lines(during)}")
    if busy > 0.5:
        report.failures.append(f"fd exhaustion: the hub used {busy:.0%} CPU while idle and full")


# -- the campaign --------------------------------------------------------------------------

SCENARIOS = ("slowloris", "flood", "slow-consumers", "fd-exhaustion")


async def campaign(seed: int = DEFAULT_SEED, budget: float = 1800.0, slow_clients: int = 50,
                   slow_interval: float = 1.0, slow_cap: float = 60.0,
                   flood_seconds: float = 5.0, flood_workers: int = 100,
                   flood_max_seconds: float = 120.0, slow_rounds: int = 2,
                   settle: float = 10.0, nofile: int = 200, full_watch: float = 5.0,
                   extra_conf: str = "", only: tuple[str, ...] = SCENARIOS,
                   dir: str | None = None, keep: bool = False, out: Any = print) -> Report:
    """Run the scenarios in ``only``; ``extra_conf`` is added to the hubs' config (the
    suite's short run lowers max_pending with it)."""
    rng = random.Random(seed)
    random.seed(seed)
    began = time.monotonic()
    base = workdir("abuse", dir)
    report = Report()
    conf = CONF + extra_conf.replace("{", "{{").replace("}", "}}")
    hub = Hub.make(base, conf)
    out(f"abuse: seed {seed}, work dir {base}, scenarios {', '.join(only)}")
    hub.start()
    steps = [("slowloris", lambda: slowloris(hub, report, slow_clients, slow_interval,
                                             slow_cap, rng)),
             ("flood", lambda: floods(hub, report, flood_seconds, flood_workers)),
             ("slow-consumers", lambda: slow_consumers_rounds(hub, report, flood_max_seconds,
                                                              slow_rounds, settle)),
             ("fd-exhaustion", lambda: fd_exhaustion(base, report, nofile, conf, full_watch))]
    try:
        for name, step in steps:
            if name not in only:
                continue
            if time.monotonic() - began > budget:
                report.failures.append(f"time budget of {budget:.0f} s used up before {name}")
                break
            out(f"{name} ...")
            t = time.monotonic()
            try:
                await step()
            except Exception as exc:  # noqa: BLE001 - reported, the others still run
                report.failures.append(f"{name}: aborted with {exc!r}")
            out(f"{name}: {time.monotonic() - t:.0f} s")
            if not hub.running():
                report.failures.append(f"the hub died during {name}")
                break
    finally:
        if hub.running():
            rc = hub.stop()
            if rc != 0:
                report.failures.append(f"hub exit status {rc} on SIGTERM")
    bad = [line for line in hub.problems() if "[ERR]" in line or "Traceback" in line
           or "[FTL]" in line]
    if bad:
        report.notes.append(f"hub log: {len(bad)} [ERR]/traceback lines: "
                            f"{describe_lines(bad, 5)}")
    report.elapsed = time.monotonic() - began
    if report.ok and not keep:
        remove_workdir(base)
    return report


def render(report: Report) -> str:
    rows = [[r.scenario, r.clients, r.result, r.rss, r.fds, r.log] for r in report.rows]
    text = table(["scenario", "clients", "result", "hub RSS MB before / peak / after",
                  "hub FDs before / peak / after", "log lines"], rows)
    text += f"\n\n{len(report.rows)} rows in {report.elapsed:.0f} s."
    if report.notes:
        text += "\n\nNotes:\n" + "\n".join(f"- {n}" for n in report.notes)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--budget", type=float, default=1800.0, help="seconds for the run")
    parser.add_argument("--slow-clients", type=int, default=50, help="slowloris clients per door")
    parser.add_argument("--slow-interval", type=float, default=1.0,
                        help="seconds between a slowloris client's bytes")
    parser.add_argument("--slow-cap", type=float, default=60.0,
                        help="seconds a slowloris connection may stay open")
    parser.add_argument("--flood-seconds", type=float, default=5.0, help="per door")
    parser.add_argument("--flood-workers", type=int, default=100)
    parser.add_argument("--slow-rounds", type=int, default=2,
                        help="times the non-reading subscribers scenario runs on one hub")
    parser.add_argument("--nofile", type=int, default=200,
                        help="descriptor limit of the fd-exhaustion hub")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated subset of {', '.join(SCENARIOS)}")
    parser.add_argument("--dir", help="work directory (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}")
    report = asyncio.run(campaign(args.seed, args.budget, args.slow_clients, args.slow_interval,
                                  args.slow_cap, args.flood_seconds, args.flood_workers,
                                  slow_rounds=args.slow_rounds, nofile=args.nofile, only=only,
                                  dir=args.dir, keep=args.keep))
    return finish(render(report), report.failures)


if __name__ == "__main__":
    sys.exit(main())

"""MQTT clients, brokers and the idle-clients scenario: the target's MQTT door side by side
with Mosquitto.

Each MQTT scenario starts the target (Jetport or nats-server) with an ``mqtt {}`` listener,
runs the workload, stops it, then does the same with a Mosquitto broker (Debian package
``mosquitto``) on a loopback port, and reports both plus the ratio: one run, one machine.
Clients speak MQTT 3.1.1 from pre-encoded frames; no MQTT library sits in the measured path.
The throughput scenarios are in ``mqttflow``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar, cast, overload

from . import servers
from .common import SETUP_TIMEOUT, run_tag
from .conns import raise_nofile
from .model import OWN, Column, Context, Outcome, Params, Scenario, proc_rss_kb
from .servers import LaunchError

PEER = "mosquitto"

# -- frames -----------------------------------------------------------------------------


def varint(n: int) -> bytes:
    """MQTT's variable byte integer (remaining length, property lengths)."""
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_string(text: str | bytes) -> bytes:
    """An MQTT string: two length bytes, then the UTF-8."""
    raw = text.encode() if isinstance(text, str) else text
    return len(raw).to_bytes(2, "big") + raw


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect_frame(client_id: str | bytes, clean: bool = True, keepalive: int = 0) -> bytes:
    """3.1.1 CONNECT; no keepalive by default (idle clients must not be dropped)."""
    flags = 0x02 if clean else 0x00
    return packet(0x10, mqtt_string("MQTT") + bytes([4, flags])
                  + keepalive.to_bytes(2, "big") + mqtt_string(client_id))


def subscribe_frame(topic: str | bytes, qos: int, pid: int = 1) -> bytes:
    return packet(0x82, pid.to_bytes(2, "big") + mqtt_string(topic) + bytes([qos]))


def publish_frame(topic: str | bytes, payload: bytes, qos: int = 0, pid: int = 0) -> bytes:
    pid_bytes = pid.to_bytes(2, "big") if qos else b""
    return packet(0x30 | qos << 1, mqtt_string(topic) + pid_bytes + payload)


# -- the client -------------------------------------------------------------------------


def _long_length(buf: bytearray, j: int, n: int) -> tuple[int, int]:
    """A multi-byte Remaining Length at ``j``: (length, offset after it), offset -1 if cut."""
    length = shift = 0
    while j < n:
        b = buf[j]
        j += 1
        length |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return length, j
    return 0, -1


class MqttConn(asyncio.BaseProtocol):
    """Counts CONNACK/SUBACK/PUBLISH/PUBACK/PINGRESP as they arrive; answers QoS 1 with
    PUBACK.

    Every arrival pokes the shared :class:`Progress`. A ``BaseProtocol`` with
    ``data_received`` rather than an ``asyncio.Protocol``, so a subclass that is also a
    ``BufferedProtocol`` is read as one (uvloop reads into ``get_buffer`` only for
    protocols that are not ``asyncio.Protocol`` instances).
    """

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.connacks = self.subacks = self.received = self.acked = self.pongs = 0
        self.refused: int | None = None
        self.closed = False
        self._writable = asyncio.Event()
        self._writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(1 << 20, 1 << 18)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._writable.set()
        self.progress.wake()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def drain(self) -> None:
        await self._writable.wait()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        n, i, acks = len(buf), 0, []
        while n - i >= 2:
            length = buf[i + 1]
            j = i + 2
            if length >= 0x80:
                length, j = _long_length(buf, i + 1, n)
                if j < 0:
                    break
            end = j + length
            if end > n:
                break
            kind = buf[i] >> 4
            if kind == 3:
                self.received += 1
                if buf[i] & 0x06:
                    at = j + 2 + (buf[j] << 8 | buf[j + 1])
                    acks.append(b"\x40\x02" + bytes(buf[at : at + 2]))
            elif kind == 4:
                self.acked += 1
            elif kind == 2:
                self.connacks += 1
                if buf[j + 1]:
                    self.refused = buf[j + 1]
            elif kind == 9:
                self.subacks += 1
            elif kind == 13:
                self.pongs += 1
            i = end
        del buf[:i]
        if acks and self.transport is not None:
            self.transport.write(b"".join(acks))
        self.progress.poke()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Progress:
    """Wakes the one waiter once its condition holds.

    The condition is checked on every arrival, which is cheap; the waiting coroutine runs
    only when there is something to do, not on every socket read.
    """

    def __init__(self) -> None:
        self._cond: Callable[[], bool] | None = None
        self._fut: asyncio.Future[None] | None = None

    def poke(self) -> None:
        if self._cond is not None and self._cond():
            self.wake()

    def wake(self) -> None:
        if self._fut is not None and not self._fut.done():
            self._fut.set_result(None)

    async def until(self, cond: Callable[[], bool], timeout: float) -> bool:
        """Wait for ``cond()``; its value once it holds, a connection closes or
        ``timeout`` passes."""
        if cond():
            return True
        self._cond, self._fut = cond, asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._fut, timeout)
        except TimeoutError:
            pass
        finally:
            self._cond = self._fut = None
        return cond()


C = TypeVar("C", bound=MqttConn)


@overload
async def open_client(port: int, client_id: str, progress: Progress, setup: bytes = b"",
                      subacks: int = 0) -> MqttConn: ...


@overload
async def open_client(port: int, client_id: str, progress: Progress, setup: bytes,
                      subacks: int, factory: Callable[[Progress], C]) -> C: ...


async def open_client(port: int, client_id: str, progress: Progress, setup: bytes = b"",
                      subacks: int = 0,
                      factory: Callable[[Progress], MqttConn] = MqttConn) -> MqttConn:
    """Connect, send CONNECT (plus ``setup``) and wait for CONNACK and ``subacks``;
    ``factory`` makes the protocol."""
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(loop.create_connection(
        lambda: factory(progress), "127.0.0.1", port), SETUP_TIMEOUT)
    conn.write(connect_frame(client_id) + setup)
    ok = await progress.until(lambda: conn.closed or bool(conn.connacks and
                                                           conn.subacks >= subacks),
                              SETUP_TIMEOUT)
    if not ok or conn.closed or conn.refused:
        conn.close()
        raise ConnectionError(f"MQTT client {client_id}: no CONNACK/SUBACK "
                              f"(refused={conn.refused}, closed={conn.closed})")
    return conn


# -- workloads --------------------------------------------------------------------------


def reaches(floor: Callable[[], int], target: int) -> Callable[[], bool]:
    """A condition that holds once ``floor()`` has caught up with ``target``."""
    return lambda: floor() >= target


async def send_window(pub: MqttConn, progress: Progress, frames: list[bytes], count: int,
                      window: int, floor: Callable[[], int], timeout: float) -> tuple[int, bool]:
    """Write ``count`` PUBLISH frames (cycling through ``frames``, one per packet id), at
    most ``window`` ahead of ``floor()`` (what has come back), in batches; then wait for
    ``floor()`` to catch up.  Returns (sent, all came back in time)."""
    batch = max(1, min(window // 2, 1000))
    sent = 0
    while sent < count:
        room = min(window - (sent - floor()), count - sent, batch)
        if room <= 0:
            # Resume once a whole batch fits again: fewer, larger writes.
            if not await progress.until(reaches(floor, sent - window + batch), timeout):
                return sent, False
            continue
        if len(frames) == 1:
            pub.write(frames[0] * room)
        else:
            first = sent % len(frames)
            chunk = frames[first : first + room]
            if len(chunk) < room:
                chunk += frames[: room - len(chunk)]
            pub.write(b"".join(chunk))
        sent += room
        await pub.drain()
    return sent, await progress.until(lambda: floor() >= sent, timeout)


def qos_frames(topic: str, payload: bytes, qos: int) -> list[bytes]:
    """One PUBLISH per packet id at QoS 1/2, or the one QoS 0 frame."""
    if qos:
        return [publish_frame(topic, payload, qos, pid) for pid in range(1, 65536)]
    return [publish_frame(topic, payload)]


async def many(port: int, pid: int | None, p: Params, timeout: float) -> Outcome:
    """N clients, each subscribed to its own topic; the broker's RSS with all of them."""
    n, parallel, settle = int(p["conns"]), int(p["parallel"]), float(p["settle"])
    raise_nofile()
    tag = run_tag()
    base_kb = proc_rss_kb(pid)
    opened: list[MqttConn] = []
    errors: list[str] = []
    todo = iter(range(n))
    deadline = time.monotonic() + timeout

    async def opener() -> None:
        for i in todo:
            if len(errors) > 20 or time.monotonic() > deadline:
                return
            try:
                opened.append(await open_client(
                    port, f"{tag}-c{i}", Progress(),
                    subscribe_frame(f"bench/{tag}/c/{i}", 0), 1))
            except (OSError, ConnectionError, TimeoutError) as exc:
                errors.append(str(exc) or type(exc).__name__)

    start = time.perf_counter()
    try:
        await asyncio.gather(*(opener() for _ in range(parallel)))
        elapsed = time.perf_counter() - start
        await asyncio.sleep(settle)
        rss_kb = proc_rss_kb(pid)
    finally:
        for c in opened:
            c.close()
    return Outcome(
        metrics={"rss_mb": rss_kb / 1024 if rss_kb and len(opened) == n else None},
        details={"opened": len(opened), "wanted": n, "connect_s": elapsed,
                 "idle_rss_mb": base_kb / 1024 if base_kb else None,
                 "errors": errors[:5]},
        partial=len(opened) < n,
        error=None if len(opened) == n else f"opened {len(opened)}/{n}: {errors[:1]}",
    )


# -- brokers ----------------------------------------------------------------------------


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    for path in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if os.access(path, os.X_OK):
            return path
    return None


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LaunchError(f"exited with status {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise LaunchError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


def _lift_nofile() -> None:
    """In Mosquitto's child: open-file soft limit up to the hard limit, for 10k clients."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.contextmanager
def door(kind: str, work: Path, timeout: float) -> Iterator[tuple[int, int]]:
    """The target's server with an MQTT listener: yields (mqtt port, pid)."""
    nats_port, mqtt_port = servers.free_ports(2)
    conf = work / f"{kind}-mqtt.conf"
    conf.write_text(f'server_name: bench\njetstream {{ store_dir: "{work / kind}" }}\n'
                    f"mqtt {{ host: 127.0.0.1, port: {mqtt_port} }}\n")
    proc, cmd, log = servers.spawn(kind, nats_port, work, log_name=f"{kind}.log",
                                   extra=["-c", str(conf)])
    try:
        try:
            servers.wait_ready("127.0.0.1", nats_port, proc, timeout)
            _wait_port(mqtt_port, proc, timeout)
        except LaunchError as exc:
            raise LaunchError(f"{kind}: {exc}\n  command: {' '.join(cmd)}\n"
                              f"{servers.log_tail(log)}") from exc
        yield mqtt_port, proc.pid
    finally:
        servers.stop(proc)


@contextlib.contextmanager
def mosquitto(work: Path, timeout: float) -> Iterator[tuple[int, int]]:
    """A Mosquitto broker on a loopback port, anonymous, no persistence: (port, pid)."""
    binary = find_mosquitto()
    if binary is None:
        raise LaunchError("mosquitto not installed (apt-get install mosquitto)")
    port = servers.free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    log = work / "mosquitto.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([binary, "-c", str(conf)], cwd=work, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                preexec_fn=_lift_nofile)
    try:
        try:
            _wait_port(port, proc, timeout)
        except LaunchError as exc:
            raise LaunchError(f"mosquitto: {exc}\n{servers.log_tail(log)}") from exc
        yield port, proc.pid
    finally:
        servers.stop(proc)


Workload = Callable[[int, int | None, Params, float], Awaitable[Outcome]]


async def side_by_side(ctx: Context, p: Params, work: Workload, key: str) -> Outcome:
    """Run ``work`` on the target's MQTT door, then on Mosquitto; both and their ratio."""
    if ctx.launch is None:
        return Outcome(metrics={}, error="mqtt scenarios start their own servers "
                                         "(--jetport, --nats-server or --compare)")
    outcomes: dict[str, Outcome] = {}
    with tempfile.TemporaryDirectory(prefix="jetport-bench-mqtt-") as tmp:
        for side in ("door", PEER):
            try:
                broker = door(ctx.launch, Path(tmp), ctx.timeout) if side == "door" \
                    else mosquitto(Path(tmp), ctx.timeout)
                with broker as (port, pid):
                    outcomes[side] = await work(port, pid, p, ctx.timeout)
            except (LaunchError, OSError, ConnectionError) as exc:
                outcomes[side] = Outcome(metrics={}, error=f"{side}: {exc}")
    mine = outcomes["door"].metrics.get(key)
    theirs = outcomes[PEER].metrics.get(key)
    errors = [f"{s}: {o.error}" if not o.error.startswith(s) else o.error
              for s, o in outcomes.items() if o.error]
    cpu = [[o.details.get("client_cpu_pct"), o.details.get("server_cpu_pct")]
           for o in outcomes.values()]
    return Outcome(
        metrics={key: mine, f"{PEER}_{key}": theirs,
                 "ratio": mine / theirs if mine and theirs else None},
        details={**{side: {**o.details, "metrics": o.metrics} for side, o in outcomes.items()},
                 **({"cpu_pairs": cpu} if any(v is not None for c in cpu for v in c) else {})},
        partial=any(o.partial for o in outcomes.values()),
        error="; ".join(errors) or None,
    )


async def clients(ctx: Context, p: Params) -> Outcome:
    return await side_by_side(ctx, p, many, "rss_mb")


CLIENTS = Scenario(
    name="mqtt-clients",
    run=clients,
    columns=(Column("rss_mb", "door MB", "mb", higher=False),
             Column(f"{PEER}_rss_mb", "mosquitto MB", "mb", higher=False, ratio=False),
             Column("ratio", "door/mosq", "float", higher=False, ratio=False)),
    defaults={"conns": 10_000, "parallel": 100, "settle": 1.0},
    label=lambda p: f"mqtt {p['conns']} clients, 1 sub each: RSS vs mosquitto",
    help="N MQTT clients each subscribed to its own topic; broker RSS, door and Mosquitto",
    server=OWN,
    phases=2,
)

"""MQTT clients the integration tests drive: paho-mqtt (3.1.1 and 5, over TCP or
WebSocket) on its own network thread, and amqtt's client in a process of its own."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

V3, V5 = paho.MQTTv311, paho.MQTTv5

#: nats-server speaks MQTT 3.1.1 only: a differential test over every MQTT version runs
#: 3.1.1 on both servers and 5 on Jetport alone.
EVERY_VERSION = pytest.mark.parametrize(
    ("target", "version"), [("jetport", V3), ("jetport", V5), ("nats-server", V3)],
    ids=["jetport-3.1.1", "jetport-5", "nats-server-3.1.1"])


class Paho:
    """A paho client (callback API v2) on its own network thread; messages queue up."""

    def __init__(self, port: int, cid: str, version: int = V3, clean: bool = True,
                 expiry: int | None = None, user: str | None = None, password: str = "",
                 will: tuple[str, bytes, int, bool] | None = None,
                 ws_path: str | None = None) -> None:
        self.port = port
        self.version = version
        self.messages: queue.Queue = queue.Queue()
        self.events: queue.Queue = queue.Queue()
        kwargs: dict[str, Any] = {} if version == V5 else {"clean_session": clean}
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=version,
                             reconnect_on_failure=False,
                             transport="tcp" if ws_path is None else "websockets", **kwargs)
        if ws_path is not None:
            self.c.ws_set_options(path=ws_path)
        if user is not None:
            self.c.username_pw_set(user, password)
        if will is not None:
            topic, payload, qos, retain = will
            self.c.will_set(topic, payload, qos=qos, retain=retain)
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_connect = lambda c, u, flags, rc, props: self.events.put(
            ("connect", flags.session_present, rc))
        self.c.on_disconnect = lambda c, u, flags, rc, props: self.events.put(
            ("disconnect", None, rc))
        self.c.on_subscribe = lambda c, u, mid, codes, props: self.events.put(
            ("suback", mid, codes))
        self.clean = clean
        self.expiry = expiry

    def connect(self) -> tuple[bool, Any]:
        """Connect and wait for CONNACK: (session present, reason code)."""
        if self.version == V5:
            props = Properties(PacketTypes.CONNECT)
            if self.expiry is not None:
                props.SessionExpiryInterval = self.expiry
            self.c.connect("127.0.0.1", self.port, keepalive=30, clean_start=self.clean,
                           properties=props)
        else:
            self.c.connect("127.0.0.1", self.port, keepalive=30)
        self.c.loop_start()
        kind, present, rc = self.event("connect", "disconnect")
        return bool(present), rc

    def event(self, *kinds: str, timeout: float = 5.0) -> tuple:
        deadline = time.monotonic() + timeout
        while True:
            item = self.events.get(timeout=max(deadline - time.monotonic(), 0.01))
            if item[0] in kinds:
                return item

    def subscribe(self, *topics: tuple[str, int]) -> list[int]:
        """Subscribe and return the SUBACK codes as ints."""
        self.c.subscribe(list(topics))
        _, _, codes = self.event("suback")
        return [int(getattr(code, "value", code)) for code in codes]

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                props: Properties | None = None) -> None:
        """Publish and wait until the QoS flow completes."""
        self.c.publish(topic, payload, qos=qos, retain=retain, properties=props) \
            .wait_for_publish(5)

    def take(self, n: int, timeout: float = 5.0) -> list[paho.MQTTMessage]:
        return [self.messages.get(timeout=timeout) for _ in range(n)]

    def nothing(self, timeout: float = 0.3) -> bool:
        try:
            msg = self.messages.get(timeout=timeout)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message {msg.topic} {msg.payload!r}")

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()

    def drop(self) -> None:
        """End the TCP connection without DISCONNECT."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock is not None:
            sock.close()


class PahoScram(Paho):
    """paho-mqtt's MQTT 5 client logging in with SCRAM (enhanced authentication).

    paho 2.2 encodes the CONNECT's and the CONNACK's Authentication Method and Data but
    has no AUTH packet of its own: its packet handler refuses one as an unknown
    command.  This class hands AUTH packets to a SCRAM client (Jetport's, from
    :mod:`jetport.core.scram`) and queues its answers through paho's own output queue;
    everything else (CONNECT, CONNACK, the session) is paho's.
    """

    def __init__(self, port: int, cid: str, user: str, password: str,
                 mechanism: str = "SCRAM-SHA-256") -> None:
        super().__init__(port, cid, V5)
        self.user, self.password, self.mechanism = user, password, mechanism
        self.scram: Any = None
        handle = self.c._packet_handle

        def packet_handle() -> Any:
            if self.c._in_packet["command"] & 0xF0 == 0xF0:
                self._auth_received(bytes(self.c._in_packet["packet"]))
                return paho.MQTTErrorCode.MQTT_ERR_SUCCESS
            return handle()

        self.c._packet_handle = packet_handle  # type: ignore[method-assign]
        self.c.on_connect = self._connected

    def _connected(self, c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        self.events.put(("connect", flags.session_present, rc))
        if rc_value(rc) == 0:
            self._check(getattr(props, "AuthenticationData", b""))

    def _check(self, server_final: bytes) -> None:
        from jetport.core.scram import ScramError

        try:
            self.scram.check(server_final)
            self.events.put(("verified", None, None))
        except ScramError as exc:
            self.events.put(("unverified", None, str(exc)))

    def connect(self) -> tuple[bool, Any]:
        from jetport.core.scram import ScramClient

        self.scram = ScramClient(self.mechanism, self.user, self.password)
        props = Properties(PacketTypes.CONNECT)
        props.AuthenticationMethod = self.mechanism
        props.AuthenticationData = self.scram.first()
        self.c.connect("127.0.0.1", self.port, keepalive=30, clean_start=True,
                       properties=props)
        self.c.loop_start()
        _, present, rc = self.event("connect", "disconnect")
        return bool(present), rc

    def _auth_received(self, body: bytes) -> None:
        code = body[0] if body else 0
        props = Properties(PacketTypes.AUTH)
        if len(body) > 1:
            props.unpack(body[1:])
        data = getattr(props, "AuthenticationData", b"")
        if code == 0x18:
            self.send_auth(0x18, self.scram.final(data))
        elif code == 0:
            self._check(data)

    def send_auth(self, code: int, data: bytes) -> None:
        props = Properties(PacketTypes.AUTH)
        props.AuthenticationMethod = self.mechanism
        props.AuthenticationData = data
        body = bytes([code]) + props.pack()
        size = len(body)
        length = bytearray()
        while True:
            size, digit = size >> 7, size & 0x7F
            length.append(digit | (0x80 if size else 0))
            if not size:
                break
        self.c._packet_queue(0xF0, bytes([0xF0]) + bytes(length) + body, 0, 0)

    def reauthenticate(self, password: str | None = None) -> tuple:
        """AUTH 0x19 (Re-authenticate): ("verified", ...) once the server proved it knew
        the password too, or ("disconnect", None, reason) when it refused."""
        from jetport.core.scram import ScramClient

        self.scram = ScramClient(self.mechanism, self.user, password or self.password)
        self.send_auth(0x19, self.scram.first())
        return self.event("verified", "unverified", "disconnect")


def rc_value(rc: Any) -> int:
    return int(getattr(rc, "value", rc))


ROOT = Path(__file__).resolve().parent.parent
#: amqtt's own environment (``make`` builds it): its pins never reach the hub's.
AMQTT_PYTHON = os.environ.get("JETPORT_AMQTT_PYTHON", str(ROOT / ".venv-amqtt/bin/python"))


class AmqttError(Exception):
    """What amqtt's client raised, as its peer process reported it."""


class Amqtt:
    """amqtt's MQTTClient in its own process (``tests/peers/amqtt_peer.py``)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def call(self, op: str, timeout: float = 10.0, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise AmqttError(f"amqtt peer exited during {op}")
        answer = json.loads(line)
        if "error" in answer:
            raise AmqttError(answer["error"])
        return answer["ok"]

    async def subscribe(self, topics: list[tuple[str, int]]) -> list[int]:
        return list(await self.call("subscribe", topics=topics))

    async def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        await self.call("publish", topic=topic, payload=payload.hex(), qos=qos)

    async def deliver_message(self, timeout_duration: float = 5.0) -> tuple[str, bytes, int] | None:
        """The next message as (topic, payload, qos), or None after the timeout."""
        msg = await self.call("deliver", timeout=timeout_duration + 5, wait=timeout_duration)
        return None if msg is None else (msg["topic"], bytes.fromhex(msg["payload"]), msg["qos"])

    async def disconnect(self) -> None:
        try:
            await self.call("disconnect")
        finally:
            await self.close()

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def amqtt_client(port: int, cid: str, auth: str = "", clean: bool = True) -> Amqtt:
    """Start amqtt's client in its own environment and connect it to the MQTT door."""
    if not Path(AMQTT_PYTHON).exists():
        raise RuntimeError(f"amqtt's environment {AMQTT_PYTHON} is missing: `make test` builds it")
    proc = await asyncio.create_subprocess_exec(
        AMQTT_PYTHON, str(ROOT / "tests/peers/amqtt_peer.py"),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    client = Amqtt(proc)
    try:
        await client.call("connect", url=f"mqtt://{auth}127.0.0.1:{port}/", client_id=cid,
                          clean=clean)
    except BaseException:
        await client.close()
        raise
    return client


async def thread(fn, *args):
    return await asyncio.to_thread(fn, *args)

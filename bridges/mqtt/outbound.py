"""The writing half of an MQTT connection, and how the connection is named in logs.

Packets become bytes for the negotiated level (the codec), gathered and written once
per event-loop turn.  What the hub holds for one client, unsent here or in the
transport, is bounded by ``max_pending``: past it, or past ``write_deadline`` without
the socket draining, the client is a slow consumer and is cut off, as the NATS door
does.  Outgoing PUBLISH packets get their topic aliases here (MQTT 5), and with ``-V``
every packet each way is traced in nats-server's words (:mod:`.trace`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from jetport.bridges.mqtt.aliases import TopicAliases
from jetport.bridges.mqtt.codec import MqttCodec
from jetport.bridges.mqtt.encoder import plain_ack, publish_head
from jetport.bridges.mqtt.packets import (
    QUOTA_EXCEEDED,
    SESSION_TAKEN_OVER,
    Disconnect,
    Packet,
    PubAck,
    Publish,
    PubRel,
)
from jetport.bridges.mqtt.trace import packet_lines, prefix
from jetport.core.log import TRACE, log
from jetport.core.sockets import reset
from jetport.core.timers import NamedTimers

if TYPE_CHECKING:
    from jetport.bridges.mqtt.door import MqttDoor
    from jetport.bridges.mqtt.session import Session


#: What an idle connection has queued: one empty list shared until a packet is queued
#: (``_queue`` takes a list of its own first).
_NO_OUT: list[bytes] = []
#: Seconds a connection closed with a reason is kept half-open, its input read and
#: dropped, so the client reads the reason (as the NATS door does for a refusal).
LINGER = 2.0


class Outbound(NamedTimers, asyncio.Protocol):
    """What :class:`jetport.bridges.mqtt.connection.MqttConnection` sends, and its name."""

    #: MQTT 5: topic aliases given to what this connection sends (3.3.2.3.4); set on the
    #: instance when a CONNECT allows them.
    aliases: TopicAliases | None = None

    def __init__(self, door: MqttDoor, kind: str) -> None:
        self.door = door
        self.kind = kind
        self.hub = door.hub
        self.codec = MqttCodec(max_packet_size=door.max_packet_size,
                               topic_alias_maximum=door.topic_alias_maximum)
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.level = 4
        self.ip, self.port = "", 0
        #: The connection's number in logs and traces (``mid:<n>``); a new session takes
        #: it as its client id number.
        self.mid = 0
        #: The CONNECT's client id (or the one assigned), once read.
        self.client_id: str | None = None
        self._out: list[bytes] = _NO_OUT
        self._out_size = 0
        #: Bytes the transport holds unsent, as of the last flush.
        self._tbuf = 0
        #: What the hub may hold for this client, queued and unsent (``max_pending``).
        self.max_pending = door.hub.options.max_pending
        self._flush_scheduled = False
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._trace = log.isEnabledFor(TRACE)

    @property
    def who(self) -> str:
        """The connection in log lines: ``ip:port - mid:n - "client id"``."""
        return prefix(self.ip, self.port, self.mid, self.client_id, self.kind == "MQTT_WS")

    @property
    def closing(self) -> bool:
        return self._closing or self.transport is None or self.transport.is_closing()

    def note(self, text: str, error: bool = False) -> None:
        """Log something about this connection: an error, or a debug line."""
        log.log(logging.ERROR if error else logging.DEBUG, "%s - %s", self.who, text)

    def _traced(self, packet: Packet, incoming: bool) -> None:
        max_len = self.hub.options.max_traced_msg_len
        for line in packet_lines(packet, incoming, max_len):
            log.log(TRACE, "%s - %s", self.who, line)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close_for(self, reason: str) -> None:
        """Close on the hub's behalf (takeover, reload, shutdown)."""
        if reason == "takeover" and self.level == 5:
            self.session = None  # the session is the new connection's: the door moves it
            self.send(Disconnect(SESSION_TAKEN_OVER))
            self.close(linger=True)
            return
        self.close()

    def close(self, linger: bool = False) -> None:
        """Flush what is queued and close.  ``linger``: what was sent last says why (a
        CONNACK refusal, a DISCONNECT reason), so half-close and read on for a while:
        closing outright with the client's packets unread resets the connection, which
        can destroy the reason before the client reads it."""
        transport = self.transport
        if transport is None or self._closing:
            return
        self._closing = True
        self._flush()
        if linger and transport.can_write_eof() and not transport.is_closing():
            transport.write_eof()
            self._start_timer("linger", LINGER, transport.abort)
            self.ended()  # the session does not wait for the socket
        else:
            transport.close()

    def ended(self) -> None:
        """The connection is over for its session (its socket may still linger)."""

    # -- output -------------------------------------------------------------------------

    def send(self, packet: Any) -> None:
        if self._trace:
            self._traced(packet, False)
        self._queue(self.codec.send(packet))

    def send_message(self, topic: str, payload: bytes, qos: int, retain: bool, dup: bool,
                     packet_id: int | None, props: dict[str, Any]) -> None:
        """A PUBLISH to the client.  Without properties, topic aliases, a size limit of
        the client's or tracing, its head is encoded straight from the fields and queued
        beside the payload, which is copied once, by the flush (encoding and joining a
        QoS 0 PUBLISH: 1.2-1.7 us against 2.2-3.5 us through a Publish and the encoder)."""
        codec = self.codec
        if props or self.aliases is not None or self._trace or \
                codec.peer_max_packet_size is not None:
            self._send_publish(Publish(topic, payload, qos, retain, dup, packet_id, props))
            return
        props_block = b"\x00" if codec.level == 5 else b""
        if qos:
            head = publish_head(topic, len(payload), qos, retain, dup, packet_id, props_block)
        else:
            # A QoS 0 head is the same for every subscriber with the same framing: the
            # door keeps the last one (16 B to 4 subscribers: 11.9-13.8 us of CPU per
            # message before, 7.5-9.6 us after).
            door, key = self.door, (topic, len(payload), retain, dup, props_block)
            if door.last_head[0] == key:
                head = door.last_head[1]
            else:
                head = publish_head(topic, len(payload), 0, retain, dup, None, props_block)
                door.last_head = (key, head)
        self._queue(head, payload)

    def send_puback(self, packet_id: int) -> None:
        """PUBACK, success: its four bytes queued without a packet object unless traced
        (560-915 ns through a PubAck and the encoder, 230-290 ns so)."""
        if self._trace:
            self.send(PubAck(packet_id))
        else:
            self._queue(plain_ack(0x40, packet_id))

    def _send_publish(self, packet: Publish) -> None:
        aliases, alias, new, topic = self.aliases, 0, False, packet.topic
        if aliases is not None:
            alias, new = aliases.choose(packet.topic)
            if alias:
                packet = replace(packet, topic=packet.topic if new else "",
                                 properties={**packet.properties, "topic_alias": alias})
        data = self.codec.send(packet)
        limit = self.codec.peer_max_packet_size
        if limit is not None and len(data) > limit:
            return  # MQTT 5: a message too big for the client is not sent
        if new and aliases is not None:
            aliases.remember(packet.topic, alias)
        if self._trace:
            self._traced(replace(packet, topic=topic) if alias else packet, False)
        self._queue(data)

    def _queue(self, data: bytes, payload: bytes = b"") -> None:
        if self._closing:
            return  # nothing goes out after the last word
        out = self._out
        if out is _NO_OUT:
            out = self._out = []
        out.append(data)
        if payload:
            out.append(payload)
        self._out_size += len(data) + len(payload)
        if self._out_size + self._tbuf > self.max_pending:
            self.slow_consumer()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def send_pubrel(self, pid: int) -> None:
        self.send(PubRel(pid))

    def _flush(self) -> None:
        self._flush_scheduled = False
        transport = self.transport
        if self._out and transport is not None and not transport.is_closing():
            transport.write(b"".join(self._out))
            self._tbuf = transport.get_write_buffer_size()
        self._out = _NO_OUT
        self._out_size = 0
        if self._tbuf > self.max_pending:
            self.slow_consumer()

    def slow_consumer(self, why: str = "") -> None:
        """Drop a client that cannot keep up, as the NATS door drops one: what the hub
        holds for it stays bounded and nobody else slows down.  An MQTT 5 client whose
        socket is still drained (its session's queue grew, not the socket's) is told
        why: DISCONNECT 0x97, Quota exceeded."""
        transport = self.transport
        if transport is None or transport.is_closing() or self._closing:
            return
        self.hub.count_slow_consumer()
        log.info("%s - Slow Consumer Detected: %s", self.who,
                 why or f"MaxPending of {self.max_pending} exceeded")
        self._out, self._out_size = _NO_OUT, 0
        self._closing = True
        if transport.get_write_buffer_size():
            reset(transport)  # a socket that is not read: nothing more would get through
            return
        if self.level == 5 and self.session is not None:
            transport.write(self.codec.send(Disconnect(QUOTA_EXCEEDED)))
        transport.close()

    def pause_writing(self) -> None:
        """The peer reads slower than we write: it has ``write_deadline`` to catch up."""
        deadline = self.hub.options.write_deadline
        self._start_timer("write", deadline, self.slow_consumer,
                          f"WriteDeadline of {deadline:g}s exceeded")

    def resume_writing(self) -> None:
        self._stop_timer("write")

"""One MQTT network connection: the codec's packets applied to a session, over asyncio.

The rules of MQTT framing live in the codec; the rules of sessions, subscriptions
and delivery in :mod:`jetport.bridges.mqtt.session`; this module only connects them to the
socket, the core's authenticator and the door's registry.  What is sent, and how the
connection is named in logs and traces, is :mod:`jetport.bridges.mqtt.outbound`'s; MQTT 5
enhanced authentication is :mod:`jetport.bridges.mqtt.enhanced`'s.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from jetport.bridges.mqtt.aliases import TopicAliases
from jetport.bridges.mqtt.enhanced import EnhancedAuth
from jetport.bridges.mqtt.outbound import Outbound
from jetport.bridges.mqtt.outmsg import QOS_HEADERS, OutMsg, SubInfo, header_lines
from jetport.bridges.mqtt.packets import (
    BAD_USER_NAME_OR_PASSWORD,
    CLIENT_IDENTIFIER_NOT_VALID,
    DISCONNECT_WITH_WILL_MESSAGE,
    IMPLEMENTATION_SPECIFIC_ERROR,
    KEEP_ALIVE_TIMEOUT,
    NO_SUBSCRIPTION_EXISTED,
    NOT_AUTHORIZED,
    PACKET_IDENTIFIER_NOT_FOUND,
    PROTOCOL_ERROR,
    RECEIVE_MAXIMUM_EXCEEDED,
    SERVER_UNAVAILABLE,
    TOPIC_FILTER_INVALID,
    TOPIC_NAME_INVALID,
    UNSPECIFIED_ERROR,
    UNSUPPORTED_PROTOCOL_VERSION,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    ProtocolError,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from jetport.bridges.mqtt.responses import RESPONSE_TOPIC
from jetport.bridges.mqtt.session import NO_IDS, Session
from jetport.bridges.mqtt.topics import (
    TopicError,
    filter_subjects,
    publish_subject,
    split_shared,
    to_subject,
    valid_filter,
)
from jetport.core import security
from jetport.core.auth import AuthError, Principal
from jetport.core.client import PermissionDenied, TooManySubscriptions
from jetport.core.log import log
from jetport.core.router import InvalidSubject
from jetport.core.tasks import spawn
from jetport.core.ticker import Ticker
from jetport.core.tls import peer_identities

if TYPE_CHECKING:
    from jetport.bridges.mqtt.door import MqttDoor

# CONNACK refusals as MQTT 5 reason codes; the codec sends 3.1.1 clients the matching
# return codes (1 version, 2 identifier, 3 unavailable, 4 credentials, 5 not authorized).
_REFUSALS = {"version": UNSUPPORTED_PROTOCOL_VERSION, "id": CLIENT_IDENTIFIER_NOT_VALID,
             "unavailable": SERVER_UNAVAILABLE, "credentials": BAD_USER_NAME_OR_PASSWORD,
             "auth": NOT_AUTHORIZED}


class ConnectionGone(Exception):
    """The connection whose CONNECT was being served closed meanwhile."""


def qos_header(qos: int, extra: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """The header block of an MQTT-originated message, as nats-server writes it."""
    if not extra:
        return QOS_HEADERS[qos]
    lines = b"".join(k + b": " + v + b"\r\n" for k, v in extra)
    return b"NATS/1.0\r\nNmqtt-Pub:%d\r\n%b\r\n" % (qos, lines)


class MqttConnection(Outbound):
    """One MQTT network connection, on the door's TCP/TLS port or carried by the
    WebSocket door (``kind`` "MQTT_WS", the connection type permissions see)."""

    # Set on the instance only when they change: an idle connection keeps at most 30
    # attributes, which CPython stores without a dict of their own (about 1.2 KB less).
    #: The client certificate's names (TLS listeners), for verify_and_map.
    tls_identities: list[str] | None = None
    _held: list[Packet | ProtocolError] | None = None
    #: MQTT 5 enhanced authentication, when the CONNECT named a method.
    auth: EnhancedAuth | None = None
    _wake: asyncio.Future[None] | None = None
    #: The network connection is gone (connection_lost ran).
    lost = False

    def __init__(self, door: MqttDoor, kind: str = "MQTT") -> None:
        super().__init__(door, kind)
        self.window = door.max_inflight
        self.will: Any = None
        self.keepalive = 0.0
        #: With a keep-alive, the hub's ticker of 1.5 keep-alive periods: every read moves
        #: this connection to its end, so its tick means that long a silence.  One loop
        #: timer shared by the clients of one keep-alive instead of a timer each: 3,000
        #: idle clients with a 60 s keep-alive, 5.19 -> 4.63 KB of RSS each.
        self._silence: Ticker | None = None
        #: MQTT 5: the Receive Maximum announced, and the packet ids of the client's QoS 1
        #: and 2 PUBLISH packets not yet answered by PUBACK, PUBCOMP or an error PUBREC.
        self.receive_maximum = door.options.receive_maximum
        self._incoming: set[int] = NO_IDS
        #: The Session Expiry Interval the CONNECT gave (MQTT 5).
        self.connect_expiry = 0.0

    # -- connection ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername") or ("", 0)
        self.ip, self.port = peer[0], peer[1]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.tls_identities = peer_identities(ssl_object)
        self.door.connections.add(self)
        self.mid = self.hub.next_cid()
        log.debug("%s - Client connection created", self.who)
        self._start_timer("connect", self.door.connect_timeout, self.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._stop_timers()
        if self._silence is not None:
            self._silence.cancel(self)
        self.door.connections.discard(self)
        log.debug("%s - Client connection closed", self.who)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)  # an authentication exchange waiting ends
        self.ended()

    def ended(self) -> None:
        session = self.session
        self.session = None
        if session is not None and session.conn is self:
            self.door.disconnected(session, self.will)

    # -- input --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            self._received(data)
        except Exception as exc:  # noqa: BLE001 - the hub's own failure: logged, and the peer told
            self.crashed(exc)

    def crashed(self, exc: BaseException) -> None:
        """The hub failed while serving this connection: log it with the client, tell
        an MQTT 5 peer (DISCONNECT 0x83), close."""
        log.error("%s - internal error: %s", self.who, exc, exc_info=exc)
        if self.level == 5 and self.session is not None:
            self.send(Disconnect(IMPLEMENTATION_SPECIFIC_ERROR))
        self.close()

    def _received(self, data: bytes) -> None:
        if self._closing:
            return  # lingering after its last word: what the client still sends is dropped
        if self._silence is not None:
            self._silence.schedule(self)
        packets = self.codec.receive_data(data)
        if self._held is not None:
            self._held.extend(packets)
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)
            return
        self._process(packets)

    async def next_held(self) -> Packet | ProtocolError | None:
        """The next packet that arrived while the CONNECT was answered (enhanced
        authentication reads the client's AUTH this way); None once the connection is
        gone."""
        held = self._held
        if held is not None and not held and not self.closing:
            self._wake = self._loop.create_future()
            await self._wake
        if held is None or not held or self.closing:
            return None
        packet = held.pop(0)
        if self._trace and not isinstance(packet, ProtocolError):
            self._traced(packet, True)
        return packet

    def _process(self, packets: list[Packet | ProtocolError]) -> None:
        trace = self._trace
        for i, packet in enumerate(packets):
            if self._closing:
                return
            if trace and not isinstance(packet, ProtocolError | Connect):
                self._traced(packet, True)
            if isinstance(packet, Publish):
                self._on_publish(packet)
            elif isinstance(packet, PubAck):
                self._ack(packet.packet_id, 1)
            elif isinstance(packet, PubRec):
                if self.session is not None and self.session.received(packet.packet_id):
                    self.send(PubRel(packet.packet_id))
                else:
                    self.send(PubRel(packet.packet_id, PACKET_IDENTIFIER_NOT_FOUND
                                     if self.level == 5 else 0))
            elif isinstance(packet, PubRel):
                self._on_pubrel(packet.packet_id)
            elif isinstance(packet, PubComp):
                self._ack(packet.packet_id, 2)
            elif isinstance(packet, Subscribe):
                self._on_subscribe(packet)
            elif isinstance(packet, Unsubscribe):
                self._on_unsubscribe(packet)
            elif isinstance(packet, PingReq):
                self.send(PingResp())
            elif isinstance(packet, Disconnect):
                if not self._update_expiry(packet.properties):
                    # Not a valid DISCONNECT (MQTT 5 3.14.2.2.2): the will stays.
                    self._protocol_error(ProtocolError(
                        PROTOCOL_ERROR, "session expiry set on DISCONNECT after 0"))
                    return
                if packet.reason_code != DISCONNECT_WITH_WILL_MESSAGE:
                    self.will = None
                self.close()
                return
            elif isinstance(packet, Connect):
                self.client_id = packet.client_id
                if trace:  # once the client id, part of every line's prefix, is known
                    self._traced(packet, True)
                self._held = list(packets[i + 1:])
                spawn(self._on_connect(packet), f"{self.who} - CONNECT")
                return
            elif isinstance(packet, ProtocolError):
                self._protocol_error(packet)
                return
            elif isinstance(packet, Auth):
                if self.auth is None:
                    self._protocol_error(ProtocolError(0x82, "AUTH without an authentication "
                                                       "method in CONNECT"))
                    return
                self.auth.received(packet)

    def _protocol_error(self, err: ProtocolError) -> None:
        """The one reaction to a broken peer: DISCONNECT with the reason (MQTT 5) or
        just close (3.1.1); a CONNECT-stage error gets its CONNACK."""
        log.debug("%s - %s", self.who, err.message)
        told = True
        if self.session is None:
            # CONNECT's own problems get a CONNACK (mapped to 3.1.1 return codes by the
            # encoder); the others, as with nats-server, just close.
            if err.reason_code in (0x84, 0x85, 0x86) or self.codec.level == 5:
                self.send(ConnAck(False, err.reason_code))
            else:
                told = False
        elif self.level == 5:
            self.send(Disconnect(err.reason_code))
        else:
            told = False
        self.close(linger=told)

    # -- CONNECT ------------------------------------------------------------------------

    def _refuse(self, why: str) -> None:
        self.send(ConnAck(False, _REFUSALS[why]))
        self.close(linger=True)

    async def _on_connect(self, pkt: Connect) -> None:
        try:
            await self._connecting(pkt)
        except Exception as exc:  # noqa: BLE001 - a failure of the hub's, not the client's CONNECT
            if self.session is None:
                log.error("%s - internal error on CONNECT: %s", self.who, exc, exc_info=exc)
                self._refuse("unavailable")
            else:
                self.crashed(exc)

    async def _connecting(self, pkt: Connect) -> None:
        self.level = pkt.protocol_level
        door, hub = self.door, self.hub
        client_id = pkt.client_id
        assigned = ""
        if not client_id:
            if not pkt.clean_start and self.level == 4:
                self._refuse("id")
                return
            client_id = assigned = self.client_id = "auto-" + secrets.token_hex(8)
        ack_props: dict[str, Any] = {}
        method = pkt.properties.get("authentication_method")
        if method:
            self.auth = EnhancedAuth(self, method)
            proved = await self.auth.connect(
                pkt.username, pkt.properties.get("authentication_data", b""))
            if proved is None:
                return
            principal, server_final = proved
            ack_props.update(self.auth.connack_properties(server_final))
        else:
            found = await self._authenticate(pkt)
            if found is None:
                return
            principal = found
        keepalive = pkt.keepalive
        bound = door.options.max_keep_alive
        # Mosquitto's max_keepalive, checked as it does once the client is authenticated:
        # 0 ("never") is more than any bound; 3.1.1 has no way to be told and is refused
        # with "identifier rejected", 5 gets the bound as Server Keep Alive.
        if bound and (keepalive == 0 or keepalive > bound):
            if self.level == 4:
                self.note(f"keep-alive {keepalive}s over max_keep_alive {bound}s")
                self._refuse("id")
                return
            keepalive = bound
        await security.prepare(hub, principal)
        if self.transport is None or self.transport.is_closing():
            return
        account = security.account_for(hub, principal)
        if account.at_connection_limit() or len(hub.clients) >= hub.options.max_connections:
            self._refuse("unavailable")
            return
        props = pkt.properties
        expiry = float(props.get("session_expiry_interval", 0))
        # 3.1.1: clean=0 keeps the session; 5: a session expiry interval does.
        persistent = not pkt.clean_start if self.level == 4 else expiry > 0
        self.connect_expiry = expiry
        try:
            session, present = await door.open_session(
                self, account, principal, client_id, pkt.clean_start, persistent, expiry)
        except ConnectionGone:
            return
        except Exception as exc:  # noqa: BLE001 - a store failure refuses the session
            self.note(f"session unavailable: {exc}", error=True)
            self._refuse("unavailable")
            return
        if self.lost:
            # Closed while the session was being opened: end it as a dropped
            # connection would, or it would stay attached to nothing.
            if session.conn is self:
                door.disconnected(session, pkt.will)
            return
        self.session = session
        self.will = pkt.will
        self._stop_timer("connect")
        self.keepalive = float(keepalive)
        if self.level == 5:
            self.window = min(int(props.get("receive_maximum", 65535)), door.max_inflight)
            if door.options.assign_topic_aliases and props.get("topic_alias_maximum"):
                self.aliases = TopicAliases(int(props["topic_alias_maximum"]))
        if self.keepalive:
            self._silence = self.hub.tickers.get(self.keepalive * 1.5)
            self._silence.schedule(self)
        if self.level == 5:
            ack_props.update({"receive_maximum": self.receive_maximum,
                              "topic_alias_maximum": door.topic_alias_maximum,
                              "maximum_packet_size": door.max_packet_size,
                              "retain_available": 1, "wildcard_subscription_available": 1,
                              "subscription_identifier_available": 1,
                              "shared_subscription_available": 1})
            if keepalive != pkt.keepalive:
                ack_props["server_keep_alive"] = keepalive
            if assigned:
                ack_props["assigned_client_identifier"] = assigned
        self.send(ConnAck(present, 0, ack_props))
        log.debug("%s - Client connected", self.who)
        session.resend()
        held, self._held = self._held or [], None
        self._process(held)

    async def _authenticate(self, pkt: Connect) -> Principal | None:
        """Who the CONNECT's user name and password (or token) prove the client to be;
        None once it was refused."""
        door, hub = self.door, self.hub
        opts: dict[str, Any] = {}
        if pkt.username is not None:
            opts["user"] = pkt.username
        if pkt.password is not None:
            opts["pass"] = pkt.password.decode(errors="replace")
            # A server token travels as the MQTT password, whatever the user name.
            if pkt.username is None or hub.auth.token:
                opts["auth_token"] = opts.pop("pass")
                opts.pop("user", None)
        try:
            return await door.authenticate(opts, self)
        except AuthError as exc:
            self.note(f"authentication error: {exc}", error=True)
            await hub.auth.slow_refusal(self.ip)
            if self.transport is None or self.transport.is_closing():
                return None
            # 3.1.1 says "not authorized" (5) either way, as nats-server and Mosquitto do;
            # 5 tells a wrong name or password (0x86) from no credentials (0x87).
            self._refuse("credentials" if pkt.username is not None and self.level == 5
                         else "auth")
            return None

    def _update_expiry(self, props: dict[str, Any]) -> bool:
        """A DISCONNECT's Session Expiry Interval replaces the CONNECT's: the session
        then lives that long from the disconnect, 0 ends it with the connection.  False
        when the CONNECT's was 0 and this one is not: a protocol error."""
        session = self.session
        if session is None or "session_expiry_interval" not in props:
            return True
        value = float(props["session_expiry_interval"])
        if value and not self.connect_expiry:
            return False
        session.session_expiry = value
        if not value:
            session.persistent = False
        return True

    def tick(self) -> None:
        """Nothing read for 1.5 keep-alive periods: close the connection."""
        if self.lost or self._closing:
            return
        self.note("keepalive expired")
        if self.level == 5:  # told why, as MQTT 5 allows (0x8D, Keep Alive timeout)
            self.send(Disconnect(KEEP_ALIVE_TIMEOUT))
            self.close()
        else:
            self.abort()

    # -- PUBLISH in -----------------------------------------------------------------------

    def _on_publish(self, pkt: Publish) -> None:
        session = self.session
        assert session is not None
        qos, pid = pkt.qos, pkt.packet_id or 0  # no packet id: QoS 0, never acknowledged
        if qos == 2 and self.door.options.reject_qos2_publish:
            self._protocol_error(ProtocolError(0x9B, "QoS 2 publishes are refused"))
            return
        incoming = self._incoming
        if qos and self.level == 5 and pid not in incoming:
            # MQTT 5 flow control (4.9): no more unanswered QoS 1/2 publishes than the
            # Receive Maximum the CONNACK announced [MQTT-3.3.4-9].
            if len(incoming) >= self.receive_maximum:
                self._protocol_error(ProtocolError(
                    RECEIVE_MAXIMUM_EXCEEDED, f"more than {self.receive_maximum} QoS 1 and 2 "
                    "PUBLISH packets unacknowledged (Receive Maximum exceeded)"))
                return
            if incoming is NO_IDS:
                incoming = self._incoming = set()
            incoming.add(pid)
        if qos == 2 and pid in session.qos2_in:
            self.send(PubRec(pid))  # a resend of what we have: no second delivery
            return
        try:
            subject = publish_subject(pkt.topic)
        except TopicError as exc:
            self._protocol_error(ProtocolError(TOPIC_NAME_INVALID, str(exc)))
            return
        if not session.may_publish(subject):
            self.note(f"publish to {subject.decode()} denied")
            incoming.discard(pid)
            if qos == 1:
                self.send(PubAck(pid, NOT_AUTHORIZED if self.level == 5 else 0))
            elif qos == 2:
                self.send(PubRec(pid, NOT_AUTHORIZED if self.level == 5 else 0))
            return
        try:
            done = self.door.publish(session, subject, pkt)
        except InvalidSubject as exc:  # never acknowledged: nothing could route it
            self._protocol_error(ProtocolError(TOPIC_NAME_INVALID, f"invalid subject {exc}"))
            return
        if qos == 0:
            return
        if qos == 2:
            if session.qos2_in is NO_IDS:
                session.qos2_in = set()
            session.qos2_in.add(pid)
        if done is None:
            if qos == 1:
                incoming.discard(pid)
                self.send_puback(pid)
            else:
                self.send(PubRec(pid))
        else:
            done.add_done_callback(lambda f: self._acknowledge(qos, pid, f, session))

    def _acknowledge(self, qos: int, pid: int, done: asyncio.Future[int], session: Session) -> None:
        """Acknowledge once the stores decided: the reason code says whether they kept
        it.  MQTT 3.1.1 has no failure acknowledgement: the connection closes instead,
        so the client sends the message again after reconnecting."""
        if self.session is not session or self._closing:
            return
        code = done.result() if not done.cancelled() and done.exception() is None else \
            UNSPECIFIED_ERROR
        if code and self.level != 5:
            log.info("%s - message %d not stored (reason 0x%02x): closing", self.who, pid, code)
            session.qos2_in.discard(pid)
            self.close()
            return
        if code:
            session.qos2_in.discard(pid)  # an error PUBREC ends the exchange
        if code or qos == 1:
            self._incoming.discard(pid)
        self.send(PubAck(pid, code) if qos == 1 else PubRec(pid, code))

    def _on_pubrel(self, pid: int) -> None:
        session = self.session
        assert session is not None
        known = pid in session.qos2_in
        session.qos2_in.discard(pid)
        self._incoming.discard(pid)
        if known and session.persistent:
            self.door.save(session)
        self.send(PubComp(pid, 0 if known or self.level == 4 else PACKET_IDENTIFIER_NOT_FOUND))

    def _ack(self, pid: int, qos: int) -> None:
        if self.session is not None:
            self.session.acked(pid, qos)

    # -- SUBSCRIBE ----------------------------------------------------------------------

    def _on_subscribe(self, pkt: Subscribe) -> None:
        session = self.session
        assert session is not None
        codes: list[int] = []
        retained: list[OutMsg] = []
        identifier = pkt.properties.get("subscription_identifier")
        for req in pkt.subscriptions:
            code, msgs = self._subscribe_one(session, req, identifier)
            codes.append(code)
            retained.extend(msgs)
        if session.persistent:
            self.door.save(session)
        self.send(SubAck(pkt.packet_id, codes))
        session.send_retained(retained)

    def _subscribe_one(self, session: Session, req: Any, identifier: int | None
                       ) -> tuple[int, list[OutMsg]]:
        failure = 0x80 if self.level == 4 else TOPIC_FILTER_INVALID
        try:
            group, inner = split_shared(req.topic_filter)
            if not valid_filter(inner) or inner.startswith("$MQTT"):
                return failure, []
            subjects = filter_subjects(inner)
        except TopicError:
            return failure, []
        qos = min(req.qos, 1 if self.door.options.downgrade_qos2_subscribe else 2)
        info = SubInfo(inner, qos, req.no_local, req.retain_as_published,
                       req.retain_handling, group, identifier)
        existed = req.topic_filter in session.filters
        try:
            session.add(req.topic_filter, info, subjects)
        except PermissionDenied:
            return 0x80 if self.level == 4 else NOT_AUTHORIZED, []
        except (TooManySubscriptions, InvalidSubject):
            return 0x80 if self.level == 4 else 0x97, []
        send = req.retain_handling == 0 or (req.retain_handling == 1 and not existed)
        retained = self.door.retained
        msgs = retained.for_subscription(session, info, subjects) if send and not group else []
        return qos, msgs

    def _on_unsubscribe(self, pkt: Unsubscribe) -> None:
        session = self.session
        assert session is not None
        codes = [0 if session.remove(f) else NO_SUBSCRIPTION_EXISTED for f in pkt.topic_filters]
        if session.persistent:
            self.door.save(session)
        self.send(UnsubAck(pkt.packet_id, codes))


def request_properties(pkt: Publish) -> tuple[str | None, bytes | None,
                                                 list[tuple[bytes, bytes]]]:
    """An MQTT 5 PUBLISH's response subject, correlation data and NATS header lines."""
    props = pkt.properties
    response = None
    extra: list[tuple[bytes, bytes]] = []
    topic = props.get("response_topic")
    if topic:
        if "\r" not in topic and "\n" not in topic and topic == topic.strip():
            # for MQTT 5 subscribers, unaltered (MQTT 5 3.3.2.3.5)
            extra.append((RESPONSE_TOPIC, topic.encode()))
        try:
            response = to_subject(topic)
        except TopicError:
            response = None
    corr = props.get("correlation_data")
    ctype = props.get("content_type")
    if ctype:
        extra.append((b"Mqtt-Content-Type", ctype.encode()))
    if props.get("payload_format_indicator"):
        extra.append((b"Mqtt-Format", b"1"))
    for key, value in props.get("user_properties", ()):
        if key and ":" not in key and "\r" not in key + value and "\n" not in key + value:
            extra.append((key.encode(), value.encode()))
    return response, corr, extra


__all__ = ["ConnectionGone", "MqttConnection", "header_lines", "qos_header",
           "request_properties"]

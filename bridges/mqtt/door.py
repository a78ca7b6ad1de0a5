"""The MQTT door: listener, session registry, retained messages, wills.

Sessions are keyed by (account, client id).  A CONNECT for a client id that has a
live connection takes the session over (the old connection is closed).  Publishing
goes through the core router like any client's; QoS 1/2 publishes are acknowledged
once every stream and every persistent session that keeps them has committed them.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import secrets
import socket
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from jetport.bridges.mqtt.codec import DEFAULT_MAX_PACKET_SIZE
from jetport.bridges.mqtt.connection import (
    ConnectionGone,
    MqttConnection,
    qos_header,
    request_properties,
)
from jetport.bridges.mqtt.listing import session_page
from jetport.bridges.mqtt.outmsg import (
    EXPIRY_HEADER,
    RETAIN_HEADER,
    OutMsg,
    SubInfo,
    expiry_of,
    properties_from,
)
from jetport.bridges.mqtt.packets import QUOTA_EXCEEDED, UNSPECIFIED_ERROR, Publish
from jetport.bridges.mqtt.responses import CORRELATION, ResponseRelay
from jetport.bridges.mqtt.retained import RetainedMessages
from jetport.bridges.mqtt.session import Session
from jetport.bridges.mqtt.store import (
    REPLY_PREFIX,
    MqttStore,
    StoreUnavailable,
    session_token,
)
from jetport.bridges.mqtt.stores import AccountStores
from jetport.bridges.mqtt.topics import (
    TopicError,
    filter_subjects,
    publish_subject,
    split_shared,
)
from jetport.bridges.websocket.registry import Route, Upgrade, routes
from jetport.core.accounts import GLOBAL_ACCOUNT
from jetport.core.auth import AuthError, Principal, scram_credentials, scram_refusal
from jetport.core.config.mqtt import DEFAULT_ACK_WAIT, mqtt_options
from jetport.core.headers import get as get_header
from jetport.core.log import log
from jetport.core.requester import Requester
from jetport.core.scram import MECHANISMS, ScramError, ScramServer
from jetport.core.tasks import spawn
from jetport.core.tls import server_context
from jetport.storage.base import StorageError

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.config import Options
    from jetport.core.hub import Hub
    from jetport.core.jetstream.models import StoredMessage

#: The WebSocket path MQTT clients connect to (nats-server's, mqtt.js's default).
WS_PATH = "/mqtt"
#: Largest MQTT packet accepted (and announced to MQTT 5 clients).
TOPIC_ALIAS_MAXIMUM = 64
#: Seconds a new connection has to send CONNECT.
CONNECT_TIMEOUT = 10.0
#: Seconds to wait for streams and sessions to commit a QoS 1/2 publish.
COMMIT_TIMEOUT = 10.0


def queued_message(msg: StoredMessage) -> OutMsg:
    """A message from a session's stored queue, as it was owed to the client."""
    hdr = msg.hdrs
    topic = (get_header(hdr, b"Nmqtt-Topic") or b"").decode(errors="replace")
    qos = int(get_header(hdr, b"Nmqtt-Qos") or b"1")
    out = OutMsg(topic, msg.data, qos, False, properties_from(hdr, None), seq=msg.seq,
                 hdr=hdr)
    if EXPIRY_HEADER in hdr:
        out.expires = expiry_of(hdr)
    return out


class MqttDoor:
    name = "mqtt"
    order = 20

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        opts = mqtt_options(hub.options)
        self.options = opts
        self.host = opts.host or hub.options.host
        self.port = opts.port
        self.max_packet_size = min(DEFAULT_MAX_PACKET_SIZE, hub.options.max_payload + 4096)
        self.topic_alias_maximum = TOPIC_ALIAS_MAXIMUM
        self.max_inflight = opts.max_ack_pending or 65535
        #: Seconds a QoS 1/2 delivery waits for its ack before it is sent again (3.1.1).
        self.ack_wait = opts.ack_wait if opts.ack_wait > 0 else DEFAULT_ACK_WAIT
        #: Seconds a new connection has to send CONNECT (the block's authorization timeout).
        self.connect_timeout = opts.auth_timeout if opts.auth_timeout > 0 else CONNECT_TIMEOUT
        self.server: asyncio.base_events.Server | None = None
        self.connections: set[MqttConnection] = set()
        self.sessions: dict[tuple[str, str], Session] = {}
        #: Per (account, client id): CONNECTs being served, one after the other, so a
        #: second one takes the first one's session over instead of racing it.
        self.session_locks: dict[tuple[str, str], tuple[asyncio.Lock, list[int]]] = {}
        self.stores = AccountStores(self)
        self.retained = RetainedMessages(self)
        self._relays: dict[str, ResponseRelay] = {}
        #: Per account: where the PubAcks of QoS 1/2 publishes into streams come back.
        self._ackers: dict[str, Requester] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        #: While a QoS 1/2 publish is routed: the store writes it causes.
        self._collecting: list[asyncio.Future[Any]] | None = None
        #: Salts the SCRAM credentials of the block's own user (see scram_login).
        self._scram_secret = secrets.token_bytes(32)
        #: The last QoS 0 PUBLISH head a connection encoded, by (topic, payload size,
        #: retain, dup, property block): the next subscriber of that message reuses it.
        self.last_head: tuple[tuple[str, int, bool, bool, bytes] | None, bytes] = (None, b"")

    @classmethod
    def wanted(cls, options: Options) -> bool:
        return options.mqtt is not None and options.mqtt.port != 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        port = 0 if self.port == -1 else self.port
        opts, ssl_ctx = self.options, None
        if opts.tls_cert:
            ssl_ctx = server_context(opts.tls_cert, opts.tls_key, opts.tls_ca, opts.tls_verify,
                                     opts.tls_min_version)
        self.server = await loop.create_server(
            lambda: MqttConnection(self), self.host, port, backlog=4096, reuse_address=True,
            ssl=ssl_ctx, ssl_handshake_timeout=(opts.tls_timeout or 2.0) if ssl_ctx else None)
        self.port = self.server.sockets[0].getsockname()[1]
        for s in self.server.sockets:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.hub.listening(self.name, "mqtts" if ssl_ctx else "mqtt", self.host, self.port)
        self.hub.retainer = self.retained.from_nats
        self.hub.session_lists[self.name] = partial(session_page, self)
        routes(self.hub).add(Route("mqtt", self._over_websocket, path_prefix=WS_PATH,
                                   subprotocol="mqtt"))
        scheme = "tls" if ssl_ctx is not None else "mqtt"
        log.info("Listening for MQTT clients on %s://%s:%d", scheme, self.host, self.port)

    def _over_websocket(self, upgrade: Upgrade) -> MqttConnection:
        """A WebSocket upgrade to ``/mqtt`` (or offering ``mqtt``): the same protocol,
        carried by the WebSocket door."""
        return MqttConnection(self, kind="MQTT_WS")

    async def lame_duck(self, duration: float, grace: float) -> None:
        if self.server is not None:
            self.server.close()

    async def stop(self) -> None:
        routes(self.hub).remove("mqtt")
        self.hub.session_lists.pop(self.name, None)
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.will = None
            conn.close()
        # The closes above end the sessions' connections (their records are saved with
        # their expiry deadlines) once the loop runs them.
        for _ in range(3):
            await asyncio.sleep(0)
        for session in self.sessions.values():
            session.stop_timers()
            session.will = None
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        self.stores.close()

    # -- helpers the connections use ------------------------------------------------------

    def track(self, work: Any) -> asyncio.Future[Any]:
        """Run a store operation in the background, keeping a reference until done."""
        task = spawn(work, "MQTT store operation")
        self._tasks.add(task)
        if self._collecting is not None:
            self._collecting.append(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def authenticate(self, opts: dict[str, Any], conn: MqttConnection) -> Principal:
        """The core's authenticator decides, unless the mqtt block names its own user or
        token (nats-server's override for MQTT clients); the block's no_auth_user is who
        a client without credentials is."""
        m, auth = self.options, self.hub.auth
        if m.username or m.token:
            secret = m.password if m.username else m.token
            given = str(opts.get("pass", opts.get("auth_token", "")))
            wrong_user = bool(m.username) and opts.get("user") != m.username
            if not hmac.compare_digest(given.encode(), secret.encode()) or wrong_user:
                auth.note_failure(conn.kind)
                raise AuthError("bad MQTT credentials")
            return Principal(m.username, GLOBAL_ACCOUNT)
        if m.no_auth_user and not opts:
            return auth.no_auth(conn.kind, m.no_auth_user)
        return await auth.authenticate(opts, "", conn.kind, conn.tls_identities,
                                                conn.ip, tls_map=m.tls_map)

    def scram_login(self, mechanism: str) -> ScramServer | None:
        """A SCRAM exchange (MQTT 5 enhanced authentication) against the same users as
        :meth:`authenticate`: the mqtt block's own user, else the core's; None when the
        mechanism is not offered."""
        m = self.options
        if m.username:
            if mechanism not in MECHANISMS:
                return None
            secret = self._scram_secret

            def lookup(name: str) -> Any:
                return scram_credentials(mechanism, name,
                                         m.password if name == m.username else None, secret)

            return ScramServer(mechanism, lookup)
        if m.token:
            return None  # a token proves no user name
        return self.hub.auth.scram_login(mechanism)

    def scram_finish(self, login: ScramServer, client_final: bytes,
                     conn: MqttConnection) -> tuple[bytes, Principal]:
        """The server-final message and the principal of a SCRAM exchange that
        :meth:`scram_login` began, or :class:`AuthError`."""
        m, auth = self.options, self.hub.auth
        if not m.username:
            return auth.scram_finish(login, client_final, conn.kind)
        try:
            server_final = login.final(client_final)
        except ScramError as exc:
            auth.note_failure(conn.kind)
            mine = m.password if login.user == m.username else None
            raise scram_refusal(login, exc, mine) from None
        return server_final, Principal(m.username, GLOBAL_ACCOUNT)

    def taken_elsewhere(self, account: Account, client_id: str) -> None:
        """Another hub of the domain opened this client id's session: let ours go
        (its connection closed as on a takeover here, its will sent)."""
        session = self.sessions.pop((account.name, client_id), None)
        if session is None:
            return
        log.info("MQTT %s: session taken over by another server", client_id)
        conn = session.conn
        if conn is not None:
            will = conn.will
            conn.close_for("takeover")
            conn.session = None
            session.detach()
            if will is not None:
                self.publish_will(session, will)
        if session.expiry_timer is not None:
            session.expiry_timer.cancel()
            session.expiry_timer = None
        self._end(session)

    async def store_for(self, account: Account) -> MqttStore | None:
        """The account's MQTT streams, or None without JetStream."""
        return await self.stores.open(account)

    # -- sessions -----------------------------------------------------------------------

    async def open_session(self, conn: MqttConnection, account: Account, principal: Principal,
                           client_id: str, clean: bool, persistent: bool,
                           expiry: float) -> tuple[Session, bool]:
        """The session for a CONNECT, and whether an old one was resumed.

        CONNECTs for one client id are served one at a time: one that arrives while
        another is still being served (its store reads) waits, then takes that
        connection over, so one client id never has two live connections."""
        key = (account.name, client_id)
        lock, users = self.session_locks.get(key) or (asyncio.Lock(), [0])
        self.session_locks[key] = (lock, users)
        users[0] += 1
        try:
            async with lock:
                if conn.lost:
                    raise ConnectionGone(client_id)
                return await self._open_session(conn, account, principal, client_id, clean,
                                                persistent, expiry)
        finally:
            users[0] -= 1
            if not users[0]:
                del self.session_locks[key]

    async def _open_session(self, conn: MqttConnection, account: Account,
                            principal: Principal, client_id: str, clean: bool,
                            persistent: bool, expiry: float) -> tuple[Session, bool]:
        key = (account.name, client_id)
        old = self.sessions.get(key)
        if old is not None and old.conn is not None:
            # The old connection did not DISCONNECT: its will goes out as if it had
            # dropped (MQTT 3.1.4): at once, or after its delay unless the session is
            # resumed below; a clean start ends the session, and the will goes then.
            will = old.conn.will
            old.conn.close_for("takeover")
            old.conn.session = None
            old.detach()
            self._will_after(old, will)
        store = await self.stores.open(account)
        await self.retained.load(account)
        if persistent and store is None:
            raise StoreUnavailable("persistent sessions need JetStream")
        token = session_token(client_id)
        if clean and old is not None:
            self._end(old)
            self._forget(old)
            old = None
        if clean and store is not None:
            await store.delete_session(token)
        present = False
        session = old
        if session is None:
            session = Session(self, account, client_id, token, persistent, store)
            session.cid = conn.mid  # the number its connection's log lines carry
            session.bind(account, principal)
            self.hub.add_client(session)
            if persistent and not clean and store is not None:
                present = await self._restore(session, store)
            self.sessions[key] = session
        else:
            present = True
            session.persistent = persistent
            session.rebind(principal)
            self.hub.add_client(session)
            account.clients.add(session)
        session.session_expiry = expiry
        session.attach(conn)
        shared = self.stores.shared.get(account.name)
        if shared is not None:
            shared.opened(token, client_id)
        if session.persistent:
            self.save(session)
        return session, present

    async def _restore(self, session: Session, store: MqttStore) -> bool:
        """Bring back a persistent session stored before this connection (or restart)."""
        record = await store.load_session(session.token)
        if record is None:
            return False
        ends = record.get("ends")
        if isinstance(ends, (int, float)) and ends <= time.time():
            # It expired while nobody had it loaded (the hub was restarted meanwhile).
            await store.delete_session(session.token)
            return False
        for key, sub in record.get("subs", {}).items():
            group, inner = split_shared(key)
            info = SubInfo(inner, sub["qos"], sub.get("nl", False), sub.get("rap", False),
                           sub.get("rh", 0), group, sub.get("id"))
            try:
                session.add(key, info, filter_subjects(inner))
            except Exception as exc:  # noqa: BLE001 - permissions may have changed
                log.info("MQTT %s: subscription %s not restored: %s",
                         session.client_id, key, exc)
        session.qos2_in = set(record.get("qos2", []))
        msgs, more = await store.queued(session.token, 0, self.hub.options.max_pending // 4)
        for msg in msgs:
            session.queue.append(queued_message(msg))
        if more:  # the rest is read as the client takes these
            session.spilled = True
            session.read_to = msgs[-1].seq
        session.drop_denied()
        return True

    def read_back(self, session: Session) -> asyncio.Future[None]:
        """Start reading the next piece of a spilled session's queue from the store."""
        return self.track(self._read_back(session))

    async def _read_back(self, session: Session) -> None:
        """Up to a budget's worth of a spilled queue, in order, minus what is in flight;
        once nothing more waits in the store, the queue lives in memory again."""
        store = session.store
        try:
            if store is None:
                return
            while session.persisting:  # everything queued so far is in the store
                await asyncio.wait(list(session.persisting))
            arrivals = session.stored_only
            sent = {msg.seq for msg in session.inflight.values() if msg.seq}
            msgs, more = await store.queued(session.token, session.read_to,
                                            self.hub.options.max_pending // 4)
            for msg in msgs:
                if msg.seq not in sent:
                    session.queue.append(queued_message(msg))
            if msgs:
                session.read_to = msgs[-1].seq
            if not more and session.stored_only == arrivals:
                session.spilled = False
        finally:
            session.reading = None
        session.pump()

    def save(self, session: Session) -> None:
        if session.store is not None and session.persistent:
            session.saved = True
            self.track(session.store.save_session(session.token, session.record()))

    def disconnected(self, session: Session, will: Any) -> None:
        """The connection of ``session`` is gone (not taken over)."""
        session.detach()
        self._will_after(session, will)
        if not session.persistent:
            self._end(session)
            self._forget(session)
            if session.saved and session.store is not None:
                # an MQTT 5 session whose DISCONNECT set its expiry interval to 0
                self.track(session.store.delete_session(session.token))
            return
        # Offline: keep subscriptions (they queue QoS 1/2 messages), leave the client list.
        if session.queue.size > self.hub.options.max_pending:
            session.over_budget()
        self.hub.remove_client(session)
        session.account.clients.discard(session)
        lifetime = session.lifetime()
        if lifetime != float("inf"):
            # The whole interval from now, the last one the client gave (CONNECT or
            # DISCONNECT, MQTT 5 3.14.2.2.2); the deadline is stored for a restart.
            session.ends = time.time() + lifetime
            session.expiry_timer = asyncio.get_running_loop().call_later(
                lifetime, self._expire, session)
            self.save(session)

    def _will_after(self, session: Session, will: Any) -> None:
        """A connection ended without a normal DISCONNECT: its will goes when its will
        delay passes or its session ends, whichever comes first (MQTT 5 3.1.3.2.2);
        3.1.1 wills, and those of sessions that end with the connection, at once."""
        if will is None:
            return
        delay = float(will.properties.get("will_delay_interval", 0) or 0)
        lifetime = session.lifetime()
        if min(delay, lifetime) <= 0:
            self.publish_will(session, will)
            return
        session.will = will  # a reconnect (Session.attach) cancels it
        if delay < lifetime:
            session.will_timer = asyncio.get_running_loop().call_later(
                delay, self._will_due, session)
        # else it goes when the session ends (_end)

    def _will_due(self, session: Session) -> None:
        session.will_timer = None
        will, session.will = session.will, None
        if will is not None and session.conn is None:
            self.publish_will(session, will)

    def _expire(self, session: Session) -> None:
        session.expiry_timer = None
        if session.conn is None:
            self._end(session)
            self._forget(session)
            if session.store is not None:
                self.track(session.store.delete_session(session.token))

    def _forget(self, session: Session) -> None:
        """Take ``session`` out of the registry, if it is still the one registered."""
        key = (session.account.name, session.client_id)
        if self.sessions.get(key) is session:
            del self.sessions[key]

    def _end(self, session: Session) -> None:
        """The session ends: a will still waiting for its delay goes now."""
        session.stop_timers()
        will, session.will = session.will, None
        if will is not None:
            self.publish_will(session, will)
        session.release()
        session.queue.clear()
        session.inflight.clear()

    def publish_will(self, session: Session, will: Any) -> None:
        pkt = Publish(will.topic, will.payload, will.qos, will.retain, False, None,
                      will.properties)
        try:
            subject = publish_subject(will.topic)
        except TopicError:
            return
        if session.may_publish(subject):
            self.publish(session, subject, pkt)

    # -- publishing ---------------------------------------------------------------------

    def publish(self, session: Session, subj: bytes,
                pkt: Publish) -> asyncio.Future[Any] | None:
        """Route an MQTT message; a future when QoS 1/2 must wait for commits: it gives
        the reason code to acknowledge with (0, or why a store did not keep it).  Raises
        the router's InvalidSubject for a subject it cannot route."""
        account = session.account
        reply = None
        extra: list[tuple[bytes, bytes]] = []
        if pkt.properties:
            # MQTT 5 subscribers get the response topic and correlation data as sent
            # (headers); a NATS responder answers the relay's reply subject.
            response, correlation, extra = request_properties(pkt)
            if correlation is not None:
                extra.append((CORRELATION, base64.b64encode(correlation)))
            if response is not None:
                reply = self._relay(account).reply_for(
                    response.encode(), correlation, pkt.properties["response_topic"])
        if pkt.retain:
            extra.append((RETAIN_HEADER, b"1"))
        expiry = pkt.properties.get("message_expiry_interval") if pkt.properties else None
        if expiry:
            extra.append((EXPIRY_HEADER, b"%d" % (time.time() + expiry)))
        hdr = qos_header(pkt.qos, extra)
        waits: list[asyncio.Future[Any]] = []
        requester = None
        if pkt.retain:
            stored = self.retained.set(session.account, subj.decode(), pkt)
            if stored is not None:
                waits.append(stored)
        js = self.hub.jetstream
        if pkt.qos and reply is None:
            count = js.streams_capturing(account, subj) if js is not None else 0
            remote = self.stores.domain_streams.get(account.name)
            if remote is not None:
                count += remote.capturing(subj)
            if count:
                requester = self._acker(account)
                reply, acks = requester.expect(count)
                waits.append(acks)
        session.publishing = True
        session.in_msgs += 1
        session.in_bytes += len(pkt.payload)
        self._collecting = waits if pkt.qos else None
        try:
            account.router.publish(session, subj, reply, hdr, pkt.payload)
        finally:
            session.publishing = False
            self._collecting = None
        waits = [w for w in waits if w is not None]
        if not pkt.qos or not waits:
            if requester is not None and reply is not None:
                requester.forget(reply)
            return None
        return self.track(self._stored_by_all(waits, requester, reply))

    async def _stored_by_all(self, waits: list[asyncio.Future[Any]], requester: Any,
                         reply: bytes | None) -> int:
        """0 once every store kept the message, else the reason code to answer with:
        Quota exceeded (0x97) when a disk is full, Unspecified error (0x80) otherwise."""
        try:
            results = await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True),
                                              COMMIT_TIMEOUT)
        except TimeoutError:
            log.warning("MQTT: a publish was not committed within %ss", COMMIT_TIMEOUT)
            return UNSPECIFIED_ERROR
        finally:
            if requester is not None and reply is not None:
                requester.forget(reply)
        for result in results:
            if isinstance(result, StorageError):
                return QUOTA_EXCEEDED if result.out_of_space else UNSPECIFIED_ERROR
            if isinstance(result, BaseException):
                return UNSPECIFIED_ERROR
            if isinstance(result, list):  # the streams' PubAcks
                for _subject, _hdr, payload in result:
                    if payload.startswith(b'{"error"'):
                        full = b'"err_code":10023' in payload
                        return QUOTA_EXCEEDED if full else UNSPECIFIED_ERROR
        return 0

    def _acker(self, account: Account) -> Requester:
        acker = self._ackers.get(account.name)
        if acker is None:
            acker = self._ackers[account.name] = Requester(self.hub, account, "$MQTT",
                                                           prefix=REPLY_PREFIX)
        return acker

    def relayed_request(self, account: Account, reply: bytes) -> tuple[str, bytes | None] | None:
        """The response topic and correlation data behind a relay reply subject."""
        relay = self._relays.get(account.name)
        return relay.request_of(reply) if relay is not None else None

    def _relay(self, account: Account) -> ResponseRelay:
        relay = self._relays.get(account.name)
        if relay is None:
            relay = self._relays[account.name] = ResponseRelay(self.hub, account)
        return relay

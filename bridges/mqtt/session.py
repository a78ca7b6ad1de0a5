"""An MQTT session: a core client whose life is the session's, not the connection's.

The session subscribes in its account's router like any client.  While a connection
is attached, deliveries become PUBLISH packets; QoS 1/2 ones wait in an ordered
queue for the client's receive window and stay in flight until acknowledged.  A
persistent session keeps its subscriptions while offline and stores every QoS 1/2
message owed to it (``$MQTT_queue``), so neither a reconnect nor a hub restart loses
one.  Clean sessions keep all of this in memory and end with their connection.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from jetport.bridges.mqtt.outmsg import (
    BARE_HEADERS,
    EXPIRY_HEADER,
    RETAIN_HEADER,
    OutMsg,
    OutQueue,
    SubInfo,
    expiry_of,
    mqtt_qos,
    past_expiry,
    properties_from,
)
from jetport.bridges.mqtt.responses import RELAY_PREFIX
from jetport.bridges.mqtt.topics import TopicError, delivery_topic, to_subject
from jetport.core.client import Client
from jetport.core.headers import add as add_headers
from jetport.core.log import log
from jetport.core.memo import remember
from jetport.core.subjects import is_literal, subject_matches

if TYPE_CHECKING:
    from jetport.bridges.mqtt.connection import MqttConnection
    from jetport.bridges.mqtt.door import MqttDoor
    from jetport.bridges.mqtt.store import MqttStore
    from jetport.core.accounts import Account
    from jetport.core.auth import Principal
    from jetport.core.router import Subscription

#: Subjects whose matching subscriptions a session remembers.
_MATCHES_KEPT = 256
#: What a session or connection holds until it has a packet id or a store to track:
#: shared empty sets, never added to (each gets its own before its first add), 216
#: bytes less each.
NO_IDS: set[int] = set()
_NO_STORES: set[asyncio.Future[Any]] = set()
#: The same for what a session has in flight and the subjects it matched (64 bytes each).
_NO_INFLIGHT: dict[int, OutMsg] = {}
_NO_MATCHES: dict[bytes, list[Subscription]] = {}


class Session(Client):
    """One client id's session in one account."""

    conn_type = "MQTT"
    headers = True
    # The session's own state in slots: with the client's counters in the instance dict
    # as well, an idle session's attributes would need a dict of about 1.6 KB.
    __slots__ = (
        "door", "client_id", "token", "persistent", "store", "conn", "filters",
        "_sid", "queue", "spilled", "read_to", "reading", "stored_only", "persisting",
        "inflight", "_next_pid", "qos2_in", "publishing", "expiry_timer", "_redeliver",
        "session_expiry", "ends", "will", "will_timer", "saved", "level", "_plain_index",
        "_plain", "_matches",
    )

    def __init__(self, door: MqttDoor, account: Account, client_id: str, token: str,
                 persistent: bool, store: MqttStore | None) -> None:
        super().__init__(door.hub, account)
        self.door = door
        self.client_id = client_id
        self.name = client_id
        self.token = token
        self.persistent = persistent
        self.store = store
        self.conn: MqttConnection | None = None
        #: topic filter -> its options; each core subscription behind it holds them too
        #: (``Subscription.info``), for its deliveries.
        self.filters: dict[str, SubInfo] = {}
        self._sid = 0
        self.queue = OutQueue()
        #: The queue went over the budget and lives in the store (persistent sessions):
        #: new messages only go there, and it is read back in budget-sized pieces, after
        #: sequence ``read_to``, as the client takes them.
        self.spilled = False
        self.read_to = 0
        self.reading: asyncio.Future[Any] | None = None
        #: Messages that went to the store only (spilled), counted so a read-back can
        #: tell whether one arrived while it read.
        self.stored_only = 0
        #: Stores of queued messages not finished yet.
        self.persisting: set[asyncio.Future[Any]] = _NO_STORES
        self.inflight: dict[int, OutMsg] = _NO_INFLIGHT
        self._next_pid = 0
        #: QoS 2 packet ids received and not yet released.
        self.qos2_in: set[int] = NO_IDS
        #: While the session publishes: deliveries then come from itself (no local).
        self.publishing = False
        self.expiry_timer: asyncio.TimerHandle | None = None
        self._redeliver: asyncio.TimerHandle | None = None
        self.session_expiry = 0.0  # seconds an offline persistent session lives; 0: forever
        #: Wall-clock second an offline persistent session ends (None: connected, or never).
        self.ends: float | None = None
        #: The will of the last connection while its will delay runs, and its timer (None
        #: when it goes when the session ends).
        self.will: Any = None
        self.will_timer: asyncio.TimerHandle | None = None
        #: A record of this session is in the store (it was saved at least once).
        self.saved = False
        #: Protocol level of the last connection: MQTT 5 sessions get one copy of a
        #: message that several of their subscriptions match.
        self.level = 4
        #: Non-shared subscriptions by literal subject, and the wildcard ones, for finding
        #: those a message matches: built on first need (MQTT 5 sessions with several),
        #: dropped on any change, 250 bytes less for a session that never needs them.
        self._plain_index: tuple[dict[bytes, list[Subscription]], list[Subscription]] | None \
            = None
        self._plain = 0
        #: subject -> the non-shared subscriptions matching it (cleared on any change)
        self._matches: dict[bytes, list[Subscription]] = _NO_MATCHES

    def connz_fields(self) -> dict[str, Any]:
        """nats-server shows an MQTT client by its client id."""
        return {"mqtt_client": self.client_id}

    # -- subscriptions ----------------------------------------------------------------

    def add(self, key: str, info: SubInfo, subjects: list[str]) -> None:
        """Subscribe (or replace the subscription for) ``key``; may raise the core's
        subscription errors, leaving nothing half done."""
        self.remove(key)
        queue = info.group.encode() if info.group else None
        made: list[Subscription] = []
        try:
            for subject in subjects:
                self._sid += 1
                sid = b"%d" % self._sid
                made.append(self.subscribe(subject.encode(), queue, sid))
        except Exception:
            for sub in made:
                self.drop_subscription(sub)
            raise
        info.sids = tuple(sub.sid for sub in made)
        for sub in made:
            sub.info = info
        self.filters[key] = info

    def remove(self, key: str) -> bool:
        info = self.filters.pop(key, None)
        if info is None:
            return False
        for sid in info.sids:
            self.unsubscribe(sid)
        return True

    def subscribe(self, subject: bytes, queue: bytes | None, sid: bytes) -> Subscription:
        known = sid in self.subs
        sub = super().subscribe(subject, queue, sid)
        if queue is None and not known:
            self._plain += 1
            self._plain_changed()
        return sub

    def drop_subscription(self, sub: Subscription) -> None:
        held = self.subs.get(sub.sid) is sub
        super().drop_subscription(sub)
        sub.info = None  # a delivery already under way skips it
        if held and sub.queue is None:
            self._plain -= 1
            self._plain_changed()

    def release(self) -> None:
        for sub in self.subs.values():
            sub.info = None
        super().release()
        self._plain = 0
        self._plain_changed()

    def _plain_changed(self) -> None:
        self._plain_index = None
        self._matches.clear()

    def rebind(self, principal: Principal) -> list[Subscription]:
        gone = super().rebind(principal)
        self.drop_denied()
        return gone

    def drop_denied(self) -> None:
        """Forget queued and unacknowledged messages the user may no longer receive
        (permissions changed while they waited, or since they were stored)."""
        perms = self.perms
        if perms is None or not perms.sub_deny or not (self.queue or self.inflight):
            return

        def allowed(msg: OutMsg) -> bool:
            try:
                return perms.can_receive(to_subject(msg.topic).encode())
            except TopicError:
                return False

        kept = OutQueue()
        for msg in self.queue:
            if allowed(msg):
                kept.append(msg)
            else:
                self._done(msg)
        self.queue = kept
        for pid, msg in list(self.inflight.items()):
            if not allowed(msg):
                del self.inflight[pid]
                self._done(msg)

    def record(self) -> dict[str, Any]:
        """What a persistent session stores about itself."""
        return {"id": self.client_id, "expiry": self.session_expiry, "ends": self.ends,
                "subs": {k: v.record() for k, v in self.filters.items()},
                "qos2": sorted(self.qos2_in)}

    # -- delivery ---------------------------------------------------------------------

    def deliver(self, sub: Subscription, subject: bytes, reply: bytes | None,
                hdr: bytes | None, payload: bytes) -> None:
        info: SubInfo | None = sub.info
        if info is None or (info.no_local and self.publishing):
            return
        if subject[0] == 0x24 and info.skips_dollar:  # "$"
            return
        granted = info.qos
        identifiers = [info.identifier] if info.identifier else None
        retain_as_published = info.retain_as_published
        if self._plain > 1 and info.group is None and self.level == 5:
            # MQTT 5 (3.3.4): one copy for all of the client's non-shared subscriptions
            # the message matches, at the highest QoS granted, with every identifier.
            # The router hands it to each of them: the first in subscription order
            # sends it.  3.1.1 clients get a copy per subscription, as from nats-server.
            same = self._matching(subject)
            if len(same) > 1 and sub in same:
                if same[0] is not sub:
                    return
                infos: list[SubInfo] = [s.info for s in same]
                granted = max(i.qos for i in infos)
                identifiers = sorted({i.identifier for i in infos if i.identifier}) or None
                retain_as_published = any(i.retain_as_published for i in infos)
        self.out_msgs += 1
        self.out_bytes += len(payload)
        conn = self.conn
        bare = BARE_HEADERS.get(hdr) if hdr is not None else None
        if bare is not None and not reply:
            # An MQTT publish without properties (most are): the header block says its
            # QoS and nothing else (12% less CPU per QoS 0 delivery than the general way).
            qos = min(bare, granted)
            props: dict[str, Any] = {"subscription_identifier": identifiers} \
                if identifiers else {}
            retain, expires = False, 0.0
        else:
            v5 = conn is not None and conn.level == 5
            qos = min(mqtt_qos(hdr), granted)
            props = properties_from(hdr, reply) if (v5 or qos) and (hdr or reply) else {}
            if reply and "response_topic" not in props and reply.startswith(RELAY_PREFIX) and (
                    v5 or qos):
                # An MQTT 5 request passed on by a NATS service with its reply subject but
                # without its headers: the requester's response topic, never the relay's.
                request = self.door.relayed_request(self.account, reply)
                if request is not None:
                    props["response_topic"], correlation = request
                    if correlation is not None:
                        props.setdefault("correlation_data", correlation)
            if identifiers:
                props["subscription_identifier"] = identifiers
            retain = retain_as_published and hdr is not None and RETAIN_HEADER in hdr
            expires = expiry_of(hdr) if hdr is not None and EXPIRY_HEADER in hdr else 0.0
            if expires and past_expiry(props, expires, time.time()):
                return
        topic = delivery_topic(subject)
        if qos == 0:
            if conn is not None:
                conn.send_message(topic, payload, 0, retain, False, None, props)
            return
        msg = OutMsg(topic, payload, qos, retain, props, expires=expires, hdr=hdr)
        if self.persistent and self.store is not None:
            stored = self.door.track(self._persist(msg))
            if self.persisting is _NO_STORES:
                self.persisting = set()
            self.persisting.add(stored)
            stored.add_done_callback(self.persisting.discard)
            if self.spilled:  # in order behind what waits in the store
                self.stored_only += 1
                return
        if conn is not None and not self.queue and len(self.inflight) < conn.window:
            # Nothing waits before it and the window has room: out at once, not through
            # the queue and pump (-10% CPU per QoS 1 delivery).
            self._send_first(conn, msg, time.monotonic())
            self._arm(conn, self.door.ack_wait)
            return
        self.queue.append(msg)
        self.pump()
        if self.queue.size > self.hub.options.max_pending:
            self.over_budget()

    def _wants(self, info: SubInfo, subject: bytes) -> bool:
        """Whether subscription ``info`` takes a message on ``subject`` at all."""
        if info.no_local and self.publishing:
            return False
        return not (subject[:1] == b"$" and info.skips_dollar)

    def _matching(self, subject: bytes) -> list[Subscription]:
        """The non-shared subscriptions that take a message on ``subject``, in the
        order they were made."""
        subs = self._matches.get(subject)
        if subs is None:
            if self._plain_index is None:
                self._plain_index = self._index_plain()
            literal, wild = self._plain_index
            subs = list(literal.get(subject, ()))
            subs += [s for s in wild if subject_matches(s.subject, subject)]
            subs.sort(key=lambda s: (len(s.sid), s.sid))
            if self._matches is _NO_MATCHES:
                self._matches = {}
            remember(self._matches, subject, subs, _MATCHES_KEPT)
        return [s for s in subs if s.info is not None and self._wants(s.info, subject)]

    def _index_plain(self) -> tuple[dict[bytes, list[Subscription]], list[Subscription]]:
        literal: dict[bytes, list[Subscription]] = {}
        wild: list[Subscription] = []
        for sub in self.subs.values():
            if sub.queue is None:
                if is_literal(sub.subject):
                    literal.setdefault(sub.subject, []).append(sub)
                else:
                    wild.append(sub)
        return literal, wild

    def over_budget(self) -> None:
        """More is queued than the hub holds for one client: a connected client is a
        slow consumer; an offline persistent session keeps its queue in the store only."""
        if self.conn is not None:
            self.conn.slow_consumer(f"{len(self.queue)} queued messages, {self.queue.size} "
                                    f"bytes, exceed MaxPending of {self.hub.options.max_pending}")
        elif self.persistent and self.store is not None:
            log.debug("MQTT %s: %d queued messages kept in the store only", self.client_id,
                      len(self.queue))
            self.spill()

    def spill(self) -> None:
        """Keep the queue in the store only (every queued message is stored there; what
        was sent and not acknowledged stays in flight)."""
        self.queue.clear()
        self.spilled = True
        self.read_to = 0

    async def _persist(self, msg: OutMsg) -> None:
        assert self.store is not None
        lines = [(b"Nmqtt-Topic", msg.topic.encode()), (b"Nmqtt-Qos", b"%d" % msg.qos)]
        hdr = add_headers(msg.hdr, lines)
        msg.seq = await self.store.enqueue(self.token, hdr, msg.payload)
        if msg.acked:
            await self.store.dequeue(msg.seq)

    def send_retained(self, msgs: list[OutMsg]) -> None:
        """Retained messages for a new subscription, ahead of live ones."""
        for msg in msgs:
            if msg.qos == 0:
                if self.conn is not None:
                    self.conn.send_message(msg.topic, msg.payload, 0, True, False, None,
                                           msg.properties)
            else:
                self.queue.append(msg)
        self.pump()

    def pump(self) -> None:
        """Send queued QoS 1/2 messages while the client's window has room."""
        conn = self.conn
        if conn is None:
            return
        window = conn.window
        queue, inflight = self.queue, self.inflight
        if self.spilled and not queue and self.reading is None:
            self.reading = self.door.read_back(self)
        if not queue or len(inflight) >= window:
            return
        now, sent = time.time(), time.monotonic()
        while queue and len(inflight) < window:
            msg = queue.popleft()
            if msg.expired(now):
                self._done(msg)
                continue
            self._send_first(conn, msg, sent)
        self._arm(conn, self.door.ack_wait)

    def _send_first(self, conn: MqttConnection, msg: OutMsg, now: float) -> None:
        """Send a QoS 1/2 message for the first time, in flight under a new packet id."""
        pid = self._new_pid()
        if self.inflight is _NO_INFLIGHT:
            self.inflight = {}
        self.inflight[pid] = msg
        msg.sent = now
        conn.send_message(msg.topic, msg.payload, msg.qos, msg.retain, False, pid,
                          msg.properties)

    def _new_pid(self) -> int:
        pid, inflight = self._next_pid, self.inflight
        for _ in range(65535):
            pid = pid % 65535 + 1
            if pid not in inflight:
                self._next_pid = pid
                return pid
        raise RuntimeError("no free packet id")

    def resend(self) -> None:
        """After a reconnect: everything in flight again, DUP set, then the queue."""
        conn = self.conn
        if conn is None:
            return
        now = time.monotonic()
        for pid, msg in self.inflight.items():
            self._send_again(conn, pid, msg, now)
        self._arm(conn, self.door.ack_wait)
        self.pump()

    def _send_again(self, conn: MqttConnection, pid: int, msg: OutMsg, now: float) -> None:
        msg.sent = now
        if msg.released:
            conn.send_pubrel(pid)
        else:
            conn.send_message(msg.topic, msg.payload, msg.qos, msg.retain, True, pid,
                              msg.properties)

    def _arm(self, conn: MqttConnection, delay: float) -> None:
        """Redeliver what stays unacknowledged for ``ack_wait`` (nats-server's mqtt
        option).  3.1.1 only: MQTT 5 forbids resending on a live connection
        [MQTT-4.4.0-1], so there only a reconnect sends again."""
        if self._redeliver is None and conn.level == 4 and self.inflight:
            self._redeliver = asyncio.get_running_loop().call_later(delay, self._overdue)

    def _overdue(self) -> None:
        self._redeliver = None
        conn, wait = self.conn, self.door.ack_wait
        if conn is None or not self.inflight:
            return
        now = time.monotonic()
        for pid, msg in self.inflight.items():
            if msg.sent <= now - wait:
                self._send_again(conn, pid, msg, now)
        oldest = min(msg.sent for msg in self.inflight.values())
        self._arm(conn, max(oldest + wait - now, 0.001))

    def acked(self, pid: int, qos: int) -> bool:
        """PUBACK (QoS 1) or PUBCOMP (QoS 2) for ``pid``; False when unknown."""
        msg = self.inflight.get(pid)
        if msg is None or msg.qos != qos:
            return False
        del self.inflight[pid]
        self._done(msg)
        self.pump()
        return True

    def received(self, pid: int) -> bool:
        """PUBREC: the client has the QoS 2 message; release it."""
        msg = self.inflight.get(pid)
        if msg is None or msg.qos != 2:
            return False
        msg.released = True
        return True

    def _done(self, msg: OutMsg) -> None:
        if not (self.persistent and self.store is not None):
            return
        if msg.seq:
            self.door.track(self.store.dequeue(msg.seq))
        else:
            msg.acked = True

    # -- life cycle -------------------------------------------------------------------

    def attach(self, conn: MqttConnection) -> None:
        """A connection takes the session: it no longer expires, and the last
        connection's will, still waiting for its delay, is not sent (MQTT-3.1.3-9)."""
        self.conn = conn
        self.conn_type = conn.kind
        self.ip, self.port = conn.ip, conn.port  # as /connz shows the client
        self.level = conn.level
        self.ends = None
        self.stop_timers()
        self.will = None

    def stop_timers(self) -> None:
        if self.expiry_timer is not None:
            self.expiry_timer.cancel()
            self.expiry_timer = None
        if self.will_timer is not None:
            self.will_timer.cancel()
            self.will_timer = None

    def lifetime(self) -> float:
        """Seconds the session outlives its connection (inf: until a clean start)."""
        if not self.persistent:
            return 0.0
        if not self.session_expiry or self.session_expiry >= 0xFFFFFFFF:
            return float("inf")  # 3.1.1 persistent sessions, and MQTT 5's "never"
        return self.session_expiry

    def detach(self) -> None:
        self.conn = None
        if self._redeliver is not None:
            self._redeliver.cancel()
            self._redeliver = None

    def close(self, reason: str = "") -> None:
        if self.conn is not None:
            self.conn.close_for(reason)

    def error(self, text: str) -> None:
        log.debug("MQTT %s: %s", self.client_id, text)

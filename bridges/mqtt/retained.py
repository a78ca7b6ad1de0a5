"""Retained messages of the MQTT door: per account, in memory for new subscriptions
and in the account's ``$MQTT_rmsgs`` stream (:mod:`.store`) so they outlive a restart
and, with a JetStream domain, are shared by every hub of it (:mod:`.shared` tells the
others of each write).

A retained message is kept as (topic, QoS, payload, properties) under its subject; an
empty payload clears it.  The first connection of an account reads the stream once;
connections arriving meanwhile wait for the same read.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from jetport.bridges.mqtt.outmsg import RETAIN_HEADER, OutMsg, SubInfo
from jetport.bridges.mqtt.packets import Publish
from jetport.bridges.mqtt.session import Session
from jetport.bridges.mqtt.topics import to_topic
from jetport.core.headers import get as get_header
from jetport.core.subjects import subject_matches
from jetport.core.tasks import spawn

if TYPE_CHECKING:
    from jetport.bridges.mqtt.door import MqttDoor
    from jetport.core.accounts import Account

Kept = tuple[str, int, bytes, dict[str, Any]]  # topic, QoS, payload, properties


class _Account:
    """One account's retained messages, by subject."""

    def __init__(self) -> None:
        self.msgs: dict[str, Kept] = {}
        #: Reading them from the store, once; every connection waits for the same read.
        self.loading: asyncio.Future[None] | None = None


class RetainedMessages:
    def __init__(self, door: MqttDoor) -> None:
        self.door = door
        self._accounts: dict[str, _Account] = {}

    def _of(self, account: Account) -> _Account:
        r = self._accounts.get(account.name)
        if r is None:
            r = self._accounts[account.name] = _Account()
        return r

    def set(self, account: Account, subject: str, pkt: Publish) -> asyncio.Future[Any] | None:
        """A publish with RETAIN: kept (or, empty, cleared) now; the future of the
        store's write."""
        retained = self._of(account)
        if pkt.payload:
            retained.msgs[subject] = (pkt.topic, pkt.qos, pkt.payload, dict(pkt.properties))
        else:
            retained.msgs.pop(subject, None)
        return self.door.track(self._store(account, subject, pkt))

    async def _store(self, account: Account, subject: str, pkt: Publish) -> None:
        store = await self.door.store_for(account)
        if store is None:
            return  # no JetStream: retained messages live in memory only
        hdr = b"NATS/1.0\r\nNmqtt-Pub:%d\r\nNmqtt-RTopic: %s\r\n\r\n" % (
            pkt.qos, pkt.topic.encode())
        if not pkt.payload:
            await store.clear_retained(subject, hdr)
            return
        await store.retain(subject, hdr, pkt.payload)

    def from_nats(self, account: Account, subject: bytes, hdr: bytes, payload: bytes) -> None:
        """A NATS (or HTTP) publish with ``Nmqtt-Retain: 1`` sets or clears the retained
        message of its subject, as an MQTT publish with RETAIN would (the hub's
        ``retainer``)."""
        value = (get_header(hdr, RETAIN_HEADER) or b"").lower()
        if value not in (b"1", b"true"):
            return
        text = subject.decode(errors="replace")
        qos = int(get_header(hdr, b"Nmqtt-Pub") or b"0") if b"Nmqtt-Pub" in hdr else 0
        self.set(account, text, Publish(to_topic(text), payload, min(qos, 2), True))

    def written_elsewhere(self, account: Account, subject: str,
                          headers: dict[bytes, bytes], payload: bytes) -> None:
        """A retained message written to the shared stream, by any hub of the domain."""
        retained = self._of(account)
        if not payload:
            retained.msgs.pop(subject, None)
            return
        retained.msgs[subject] = _kept(subject, headers, payload)

    async def load(self, account: Account) -> None:
        """Read the account's retained messages from its store, once."""
        retained = self._of(account)
        if retained.loading is None:
            retained.loading = spawn(self._read(account, retained),
                                     f"MQTT: retained messages of {account.name}",
                                     report=False)
        try:
            await asyncio.shield(retained.loading)
        except Exception:
            retained.loading = None  # the next connection tries again
            raise

    async def _read(self, account: Account, retained: _Account) -> None:
        store = await self.door.store_for(account)
        if store is None:
            return
        for subject, headers, payload in await store.retained():
            retained.msgs.setdefault(subject, _kept(subject, headers, payload))

    def for_subscription(self, session: Session, info: SubInfo, subjects: list[str]
                         ) -> list[OutMsg]:
        """Retained messages a new subscription gets, checked like live deliveries."""
        retained = self._of(session.account)
        out = []
        pats = [s.encode() for s in subjects]
        for subject, (topic, qos, payload, props) in retained.msgs.items():
            subj = subject.encode()
            if not any(subject_matches(p, subj) for p in pats):
                continue
            if topic.startswith("$") and info.skips_dollar:
                continue
            if session.perms is not None and not session.perms.can_receive(subj):
                continue
            props = dict(props)
            if info.identifier:
                props["subscription_identifier"] = [info.identifier]
            out.append(OutMsg(topic, payload, min(qos, info.qos), True, props))
        return out


def _kept(subject: str, headers: dict[bytes, bytes], payload: bytes) -> Kept:
    """A stored retained message as kept in memory (its topic and QoS from headers)."""
    topic = headers.get(b"Nmqtt-RTopic", b"").decode() or to_topic(subject)
    qos = int(headers.get(b"Nmqtt-Pub", b"0") or b"0")
    return topic, qos, payload, {}

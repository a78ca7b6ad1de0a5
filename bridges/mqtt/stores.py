"""The MQTT door's stores, one per account: opened on first use, shared by every
connection of the account, and with a JetStream domain (``mqtt { js_domain }``) joined
by what the domain's other hubs say (:mod:`.shared`) and by the domain's list of streams
(whose PubAcks a QoS 1/2 publish waits for).

When a store opens, sessions stored with a deadline (an MQTT 5 session expiry counting
from a disconnect, possibly before a restart) are ended at their deadlines unless a
client took them back by then.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from jetport.bridges.mqtt.shared import SharedMqtt
from jetport.bridges.mqtt.store import MqttStore, StoreUnavailable
from jetport.core.jetstream.domains import DomainStreams
from jetport.core.log import log
from jetport.core.tasks import spawn

if TYPE_CHECKING:
    from jetport.bridges.mqtt.door import MqttDoor
    from jetport.core.accounts import Account


class AccountStores:
    def __init__(self, door: MqttDoor) -> None:
        self.door = door
        self._stores: dict[str, MqttStore | None] = {}
        #: Accounts whose MQTT streams could not be made (logged once, retried).
        self._unavailable: set[str] = set()
        #: Stores being opened: connections arriving meanwhile wait for the same one.
        self._opening: dict[str, asyncio.Future[MqttStore | None]] = {}
        #: Per account, with a JetStream domain: what the domain's other hubs tell us.
        self.shared: dict[str, SharedMqtt] = {}
        #: Per account, with a JetStream domain: its streams, whose PubAcks a QoS 1/2
        #: publish waits for as for this server's own.
        self.domain_streams: dict[str, DomainStreams] = {}
        #: Per account: reads the stored sessions for the console without opening the
        #: store (which would create the streams); a missing stream answers at once.
        self._readers: dict[str, MqttStore] = {}

    def kept(self, account: Account) -> bool:
        """Whether the account's persistent sessions are stored (it has JetStream)."""
        return bool(self.door.options.js_domain) or (
            self.door.hub.jetstream is not None and account.jetstream_limits is not None)

    def reader(self, account: Account) -> MqttStore:
        reader = self._readers.get(account.name)
        if reader is None:
            reader = self._readers[account.name] = MqttStore(
                self.door.hub, account, self.door.options.js_domain, no_responders=True)
        return reader

    async def open(self, account: Account) -> MqttStore | None:
        """The account's MQTT streams, or None without JetStream."""
        if account.name in self._stores:
            return self._stores[account.name]
        opening = self._opening.get(account.name)
        if opening is None:
            opening = spawn(self._open(account), f"MQTT: store of account {account.name}",
                            report=False)
            self._opening[account.name] = opening
            opening.add_done_callback(lambda _: self._opening.pop(account.name, None))
        return await asyncio.shield(opening)

    async def _open(self, account: Account) -> MqttStore | None:
        store: MqttStore | None = None
        domain = self.door.options.js_domain
        if self.kept(account):
            replicas = self.door.options.stream_replicas or (3 if domain else 1)
            store = MqttStore(self.door.hub, account, domain, replicas)
            try:
                await store.ready()
            except StoreUnavailable as exc:
                # JetStream is on but failing (a full disk): the next connection tries again
                if account.name not in self._unavailable:
                    self._unavailable.add(account.name)
                    log.warning("MQTT: streams of account %s unavailable: %s", account.name,
                                exc)
                store.requester.release()
                return None
        self._unavailable.discard(account.name)
        self._stores[account.name] = store
        if domain and account.name not in self.shared:
            door = self.door
            self.shared[account.name] = SharedMqtt(door.hub, account, door.taken_elsewhere,
                                                   door.retained.written_elsewhere)
            streams = self.domain_streams[account.name] = DomainStreams(door.hub, account,
                                                                        domain)
            await streams.ready()
        if store is not None:
            self.door.track(self._sweep(account, store))
        return store

    async def _sweep(self, account: Account, store: MqttStore) -> None:
        """Offline sessions stored before a restart end at their deadlines too:
        those past it are deleted, the others when it comes (unless a client took
        them back by then)."""
        try:
            records = await store.session_records()
        except Exception as exc:  # noqa: BLE001 - a failing store: the reconnect checks
            log.info("MQTT: stored sessions of account %s not checked: %s", account.name, exc)
            return
        loop = asyncio.get_running_loop()
        now = time.time()
        for token, record in records:
            ends = record.get("ends")
            client_id = record.get("id")
            if isinstance(ends, (int, float)) and isinstance(client_id, str):
                loop.call_later(max(ends - now, 0.0), self._due_stored, account, store,
                                client_id, token)

    def _due_stored(self, account: Account, store: MqttStore, client_id: str,
                    token: str) -> None:
        self.door.track(self._end_stored(account, store, client_id, token))

    async def _end_stored(self, account: Account, store: MqttStore, client_id: str,
                          token: str) -> None:
        """Delete the stored session ``token`` if nobody took it back and it is past
        its deadline."""
        key = (account.name, client_id)
        if key in self.door.sessions or key in self.door.session_locks:
            return  # a client has it (or is taking it): its object decides
        record = await store.load_session(token)
        ends = (record or {}).get("ends")
        if not isinstance(ends, (int, float)):
            return
        if key in self.door.sessions or key in self.door.session_locks:
            return
        left = ends - time.time()
        if left > 0:  # the timer ran early by the clocks' drift
            asyncio.get_running_loop().call_later(left + 0.01, self._due_stored, account,
                                                  store, client_id, token)
            return
        await store.delete_session(token)

    def close(self) -> None:
        for reader in self._readers.values():
            reader.requester.release()
        for shared in self.shared.values():
            shared.close()
        for streams in self.domain_streams.values():
            streams.close()

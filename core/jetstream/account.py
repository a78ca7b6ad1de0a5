"""JetStream within one account: its streams, their storage, its API subscription."""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from jetport.core.ids import base62
from jetport.core.internal import InternalClient
from jetport.core.jetstream import advisories as A
from jetport.core.jetstream import apilevel
from jetport.core.jetstream import errors as E
from jetport.core.jetstream import limits as L
from jetport.core.jetstream.api import JetStreamApi
from jetport.core.jetstream.consumer import Consumer, recover_consumers
from jetport.core.jetstream.models import (
    JetStreamAccountLimits,
    StreamConfig,
    check_consumer_update,
    check_stream_update,
    check_workqueue_consumer,
    normalize_stream_config,
)
from jetport.core.jetstream.stream import Stream
from jetport.core.log import log
from jetport.core.subjects import subjects_overlap
from jetport.core.tasks import spawn
from jetport.storage.base import Storage, StorageError
from jetport.storage.memory import MemoryStorage
from jetport.storage.sqlite import SqliteStorage

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.jetstream.engine import JetStream


#: Seconds before the first attempt to reopen a failed storage, and the longest wait
#: between attempts (doubling in between).
RECOVERY_FIRST = 0.5
RECOVERY_MAX = 5.0


class JetStreamAccount:
    def __init__(self, js: JetStream, account: Account) -> None:
        self.js = js
        self.account = account
        self.client = InternalClient(js.hub, account, "$JS")
        self.streams: dict[str, Stream] = {}
        #: subject -> how many streams capture it (JetStream.streams_capturing), asked on
        #: every MQTT QoS 1/2 and HTTP publish; forgotten whenever streams change.
        self.capturing: dict[bytes, int] = {}
        #: Stored streams this server can not run: name -> (subjects, why), held offline.
        self.offline: dict[str, tuple[list[bytes], str]] = {}
        self.directory = os.path.join(js.store_dir, account.name)
        #: Why the file storage refuses writes, until it is reopened (None: it does not).
        self.storage_error: StorageError | None = None
        self.stopped = False
        self.file_storage: SqliteStorage = self._new_file_storage()
        self.memory_storage: Storage = MemoryStorage()
        self.api_total = 0
        self.api_errors = 0
        self.api = JetStreamApi(self)
        #: nats-server only checks a publish against the account's limits once the
        #: account has stored something (before that it keeps no usage record).
        self.stored_any = False

    @property
    def limits(self) -> JetStreamAccountLimits:
        """The account's limits, read live so a reload that changes them applies at once."""
        limits = getattr(self.account, "jetstream_limits", None)
        return limits if limits is not None else JetStreamAccountLimits()

    def storage_for(self, config: StreamConfig) -> Storage:
        return self.memory_storage if config.storage == "memory" else self.file_storage

    def _new_file_storage(self) -> SqliteStorage:
        return SqliteStorage(self.directory, sync_always=self.js.hub.options.jetstream_sync_always,
                             on_failure=self._storage_failed, spawn=spawn)

    async def start(self) -> None:
        """Recover every file-backed stream and its durable consumers."""
        await self._restore_file_streams()

    # -- storage faults -------------------------------------------------------------

    def _storage_failed(self, exc: StorageError) -> None:
        """A commit failed or the writer process died: one log line, error PubAcks for
        the file streams' publishers, and retries until the storage takes writes again."""
        if self.storage_error is not None or self.stopped:
            return
        self.storage_error = exc
        failed = [s for s in self.streams.values() if s.config.storage != "memory"]
        for stream in failed:  # nothing more is delivered from a view ahead of the disk
            for consumer in stream.consumers.values():
                consumer.stop()
        names = ", ".join(sorted(s.name for s in failed)) or "none yet"
        log.error("JetStream: storage of account %s failed: %s; its file streams (%s) refuse "
                  "messages until it recovers", self.account.name, exc, names)
        spawn(self._recover(), f"account {self.account.name}: storage recovery")

    async def _recover(self) -> None:
        delay = RECOVERY_FIRST
        while not self.stopped:
            await asyncio.sleep(delay)
            if self.stopped:
                return
            fresh = self._new_file_storage()
            try:
                await fresh.probe()
            except (StorageError, OSError) as exc:
                await fresh.abandon()
                log.debug("JetStream: storage of account %s still failing: %s",
                          self.account.name, exc)
                delay = min(delay * 2, RECOVERY_MAX)
                continue
            await self._reopen(fresh)
            return

    async def _reopen(self, fresh: SqliteStorage) -> None:
        """Trade the failed storage for ``fresh``: the file streams and their consumers
        start again from what the disk holds (every acknowledged message)."""
        failed = [s for s in self.streams.values() if s.config.storage != "memory"]
        old = self.file_storage
        self.file_storage = fresh
        await self._restore_file_streams(replacing=failed)
        await old.abandon()
        self.storage_error = None
        log.info("JetStream: storage of account %s recovered", self.account.name)

    async def _restore_file_streams(self, replacing: list[Stream] | None = None) -> None:
        """Load the file streams the storage holds, with their consumers.  The streams in
        ``replacing`` keep answering their publishers (with errors) until the new ones
        take their subjects over, in one step, so no publish meets a gap."""
        saved = await self.file_storage.load_streams()
        recovery = self.js.recovery
        loaded: list[tuple[Stream, float]] = []
        for name, (config_json, created) in sorted(saved.items()):
            began = time.monotonic()
            reason = apilevel.unsupported(config_json)
            if reason is None:
                try:
                    config = normalize_stream_config(
                        StreamConfig.model_validate_json(config_json))
                except (E.ApiError, ValueError) as exc:
                    reason = f"unsupported - config error: {exc}"
            if reason is not None:
                log.warning("  Detected unsupported stream '%s > %s': %s",
                            self.account.name, name, reason)
                self.offline[name] = (apilevel.stored_subjects(config_json), reason)
                continue
            store = await self.file_storage.open_stream(name)
            stream = Stream(self, config, store, created)
            await stream.recover_msg_ids()
            if config.allow_msg_ttl:
                await stream.ttls.recover()
            if config.allow_msg_schedules:
                await stream.schedules.recover()
            await recover_consumers(stream)
            loaded.append((stream, began))
        for old in replacing or ():
            for consumer in list(old.consumers.values()):
                consumer.stop()
            old.close_now()
            if self.streams.get(old.name) is old:
                del self.streams[old.name]
                self.capturing.clear()
        for stream, _ in loaded:
            self.streams[stream.name] = stream
            stream.attach()
        for stream, began in loaded:
            await stream.start_links()
            state = stream.store.state()
            self.stored_any = self.stored_any or state.msgs > 0
            log.info("  Restored %s messages for stream '%s > %s' in %.2fs", f"{state.msgs:,}",
                     self.account.name, stream.name, time.monotonic() - began)
            if recovery is not None:
                recovery.restored(state.msgs, state.bytes)

    async def stop(self) -> None:
        self.stopped = True
        for stream in list(self.streams.values()):
            for consumer in list(stream.consumers.values()):
                consumer.stop()
            await stream.close()
            if self.storage_error is not None and stream.config.storage != "memory":
                continue
            try:
                await stream.store.sync()
            except StorageError as exc:
                log.error("JetStream: stream %s > %s: last commit failed: %s",
                          self.account.name, stream.name, exc)
        if self.storage_error is not None or self.file_storage.failed:
            await self.file_storage.abandon()  # nothing more will commit
        else:
            await self.file_storage.close()
        await self.memory_storage.close()
        self.client.release()

    # -- streams --------------------------------------------------------------------

    def _check_overlap(self, config: StreamConfig, skip: str = "") -> None:
        mine = [s.encode() for s in config.subjects or []]
        held = [(o.name, o.subjects) for o in self.streams.values()]
        held += [(name, subjects) for name, (subjects, _) in self.offline.items()]
        for name, subjects in held:
            if name == skip:
                continue
            if any(subjects_overlap(a, b) for a in mine for b in subjects):
                raise E.subjects_overlap()

    async def create_stream(self, config: StreamConfig) -> tuple[Stream, bool]:
        """Create, or return the existing stream when the config is identical."""
        self._online(config.name)
        existing = self.streams.get(config.name)
        if existing is not None:
            # the same config but for versioning metadata (a stream from before it)
            if (apilevel.without_versioning(existing.config.model_dump())
                    == apilevel.without_versioning(config.model_dump())):
                return existing, False
            raise E.stream_name_in_use()
        self._check_bytes(config, config.max_bytes, self.reserved(config.storage))
        self._check_overlap(config)
        storage = self.storage_for(config)
        created = time.time_ns()
        store = await storage.open_stream(config.name)
        if config.first_seq and config.first_seq > 1:
            await store.purge(before=config.first_seq)
        storage.save_stream(config.name, config.model_dump_json(), created)
        stream = Stream(self, config, store, created)
        self.streams[config.name] = stream
        stream.attach()
        await store.sync()
        await stream.start_links()
        self.stream_changed(stream)
        A.stream_action(self, config.name, "create")
        return stream, True

    async def update_stream(self, config: StreamConfig) -> Stream:
        self._online(config.name)
        stream = self.streams.get(config.name)
        if stream is None:
            raise E.stream_not_found()
        config = check_stream_update(stream.config, config)
        self.check_update_limits(stream.config, config)
        self._check_overlap(config, skip=config.name)
        stream.config = config
        self.storage_for(config).save_stream(config.name, config.model_dump_json(),
                                             stream.created_ns)
        stream.attach()
        await stream.start_links()
        await stream.enforce_limits(b">")
        await stream.store.sync()
        A.stream_action(self, config.name, "modify")
        return stream

    async def delete_stream(self, name: str) -> None:
        if self.offline.pop(name, None) is not None:  # offline: its storage goes
            await self.file_storage.delete_stream(name)
            A.stream_action(self, name, "delete")
            return
        stream = self.streams.pop(name, None)
        if stream is None:
            raise E.stream_not_found()
        self.capturing.clear()
        for consumer in list(stream.consumers.values()):
            consumer.stop(deleted=True)
        await stream.close()
        await self.storage_for(stream.config).delete_stream(name)
        A.stream_action(self, name, "delete")

    def _online(self, name: str) -> None:
        """Refuse any request about an offline stream, saying why it is offline."""
        offline = self.offline.get(name)
        if offline is not None:
            raise E.stream_offline_reason(err=offline[1])

    def stream(self, name: str) -> Stream:
        self._online(name)
        stream = self.streams.get(name)
        if stream is None:
            raise E.stream_not_found()
        return stream

    def stream_changed(self, stream: Stream) -> None:
        """New messages or removals: let the consumers and followers look."""
        for consumer in stream.consumers.values():
            consumer.wake()
        for other in self.streams.values():
            for link in other.links:
                if link.origin_name == stream.name:
                    link.wake()

    # -- consumers ------------------------------------------------------------------

    def consumer_store(self, stream: Stream) -> Any:
        return self.storage_for(stream.config).consumers(stream.name)

    async def add_consumer(self, stream: Stream, config: Any, action: str = "") -> Consumer:
        """Create or update a consumer; ``action`` is "", "create" or "update"."""
        name = config.name or config.durable_name
        existing = stream.consumers.get(name) if name else None
        if existing is not None:
            if config.pause_until is None:  # an update that does not say keeps the pause
                config.pause_until = existing.config.pause_until
            apilevel.stamp_consumer(config)
            if action == "create" and (apilevel.without_versioning(existing.config.dump())
                                       != apilevel.without_versioning(config.dump())):
                raise E.consumer_already_exists()
            if existing.config.dump() != config.dump():
                check_consumer_update(existing.config, config,
                                      deliver_bound=existing.bound())
                existing.config = config
                existing.save(soon=True)
                existing.pause_changed()
                existing.wake()
            return existing
        if action == "update":
            raise E.consumer_does_not_exist()
        apilevel.stamp_consumer(config)
        if not name:
            name = _ephemeral_name(stream)  # nats-server does not echo it in the config
        limit = L.consumers_cap(stream.config.max_consumers, self.limits)
        if limit > 0 and len(stream.consumers) >= limit:
            raise E.maximum_consumers()
        if stream.config.retention == "workqueue":
            check_workqueue_consumer(config, [c.config for c in stream.consumers.values()])
        consumer = Consumer(stream, config, time.time_ns(), name=name)
        stream.consumers[name] = consumer
        A.consumer_action(self, stream.name, name, "create")
        consumer.start()
        if config.durable_name or config.inactive_threshold:
            consumer.save(soon=True)
        return consumer

    def remove_consumer(self, stream: Stream, name: str) -> None:
        consumer = stream.consumers.pop(name, None)
        if consumer is None:
            raise E.consumer_not_found()
        consumer.stop(deleted=True)
        self.consumer_store(stream).delete(name)
        A.consumer_action(self, stream.name, name, "delete")

    # -- limits -------------------------------------------------------------------------

    def reserved(self, storage: str, skip: str = "") -> int:
        """Bytes the account's streams of one storage type reserve (their ``max_bytes``)."""
        return sum(s.config.max_bytes for s in self.streams.values()
                   if s.config.storage == storage and s.config.max_bytes > 0
                   and s.name != skip)

    def used(self, storage: str) -> int:
        return sum(s.store.state().bytes for s in self.streams.values()
                   if s.config.storage == storage)

    def _account_max(self, storage: str) -> int:
        limits = self.limits
        return limits.max_memory if storage == "memory" else limits.max_storage

    def check_create_limits(self, config: StreamConfig, storage_given: bool) -> None:
        """What STREAM.CREATE checks before the config itself: stream count, the
        stream's consumer cap and, when the request names its storage type, its
        ``max_bytes`` reservation.

        nats-server makes this check on the request as sent, where an absent storage type
        is neither file nor memory and so reserves nothing; the reservation is checked
        again once the config is complete (in :meth:`create_stream`).  The server's
        reservation here includes an existing stream of the same name, so re-creating one
        can fail when the server is fully reserved.
        """
        limits = self.limits
        others = sum(1 for name in self.streams if name != config.name)
        if limits.max_streams > 0 and others >= limits.max_streams:
            raise E.maximum_streams()
        if 0 < limits.max_consumers < config.max_consumers:
            raise E.maximum_consumers()
        if storage_given:
            self._check_bytes(config, config.max_bytes,
                              self.reserved(config.storage, skip=config.name))

    def check_update_limits(self, old: StreamConfig, new: StreamConfig) -> None:
        """An update reserves only what it adds to ``max_bytes``."""
        if 0 < self.limits.max_consumers < new.max_consumers:
            raise E.maximum_consumers()
        add = max(new.max_bytes - old.max_bytes, 0)
        self._check_bytes(new, add, self.reserved(new.storage, skip=new.name) + old.max_bytes)

    def _check_bytes(self, config: StreamConfig, add: int, reserved: int) -> None:
        storage = config.storage
        err = L.reservation_error(
            storage, add, account_max=self._account_max(storage), account_reserved=reserved,
            server_max=self.js.server_max(storage), server_reserved=self.js.reserved(storage))
        if err is not None:
            raise err

    def publish_error(self, storage: str, size: int) -> E.ApiError | None:
        """Why a message of ``size`` stored bytes can not be stored now, if it can not."""
        server_max, account_max = self.js.server_max(storage), self._account_max(storage)
        if not self.stored_any:
            account_max = -1
        if server_max < 0 and account_max < 0:
            return None
        return L.publish_error(
            size, account_max=account_max, account_used=self.used(storage),
            server_max=server_max, server_used=self.js.used(storage) if server_max >= 0 else 0)

    def fits(self, storage: str, size: int) -> bool:
        """Would ``size`` more bytes stay within both the account's and the server's maximum?"""
        server_max, account_max = self.js.server_max(storage), self._account_max(storage)
        if account_max >= 0 and not self.stored_any:
            return False  # the first message is let through alone: see stored_any
        return ((server_max < 0 or self.js.used(storage) + size <= server_max)
                and (account_max < 0 or self.used(storage) + size <= account_max))

    def limited(self, storage: str) -> bool:
        """Do publishes to streams of this storage type need the checks above?"""
        return self._account_max(storage) >= 0 or self.js.server_max(storage) >= 0

    # -- account info -----------------------------------------------------------------

    def usage(self) -> dict[str, Any]:
        memory = storage = consumers = 0
        for s in self.streams.values():
            consumers += len(s.consumers)
            n = s.store.state().bytes
            if s.config.storage == "memory":
                memory += n
            else:
                storage += n
        return {"memory": memory, "storage": storage,
                "reserved_memory": self.reserved("memory"),
                "reserved_storage": self.reserved("file"),
                "streams": len(self.streams), "consumers": consumers}




def _ephemeral_name(stream: Stream) -> str:
    """8 random base62 characters, as nats-server names ephemeral consumers."""
    while True:
        name = base62(8)
        if name not in stream.consumers:
            return name

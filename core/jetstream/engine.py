"""JetStream for the whole hub: one :class:`JetStreamAccount` per account that uses it.

An account whose ``jetstream_limits`` is None has no JetStream; like nats-server, it still
gets an answer (10039, "JetStream not enabled for account") to its API requests.  The
server-wide ``max_mem`` / ``max_file`` bound what all accounts together reserve and store.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING

from jetport.core.accounts import SYSTEM_ACCOUNT
from jetport.core.jetstream.account import JetStreamAccount
from jetport.core.jetstream.batch import BatchLimits
from jetport.core.jetstream.disabled import NotEnabledApi
from jetport.core.log import log
from jetport.core.memo import remember
from jetport.core.subjects import subject_matches

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.hub import Hub

#: A recovery that takes longer than this reports its progress this often (seconds).
PROGRESS_INTERVAL = 5.0
#: How many subjects per account, and up to which length, have their count of capturing
#: streams remembered.
_CAPTURING_KEPT = 4096
_CAPTURING_LEN = 256


class Recovery:
    """What start-up has restored so far, logged as it goes when it takes a while."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.streams = 0
        self.msgs = 0
        self.bytes = 0
        self._timer: asyncio.TimerHandle | None = None

    def restored(self, msgs: int, nbytes: int) -> None:
        self.streams += 1
        self.msgs += msgs
        self.bytes += nbytes

    def __enter__(self) -> Recovery:
        self._timer = asyncio.get_running_loop().call_later(PROGRESS_INTERVAL, self._tick)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _tick(self) -> None:
        log.info("  Recovering JetStream state: %s streams, %s messages so far (%.1fs)",
                 f"{self.streams:,}", f"{self.msgs:,}", time.monotonic() - self.started)
        self._timer = asyncio.get_running_loop().call_later(PROGRESS_INTERVAL, self._tick)


class JetStream:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        opts = hub.options
        self.store_dir = os.path.join(os.path.abspath(opts.store_dir), "jetstream")
        self.max_memory = opts.jetstream_max_memory  # -1: no server-wide limit
        self.max_store = opts.jetstream_max_store
        #: Also answered on ``$JS.<domain>.API`` (and named in PubAcks and infos).
        self.domain = opts.jetstream_domain
        #: Atomic batch publish limits, and the count of open batches they bound.
        self.batch_limits = BatchLimits.of(opts)
        self.accounts: dict[str, JetStreamAccount] = {}
        self.not_enabled: dict[str, NotEnabledApi] = {}
        #: Start-up's restore; None once the hub runs (accounts enabled later are new).
        self.recovery: Recovery | None = None

    async def start(self) -> None:
        log.info("Starting JetStream")
        log.info("  Storage:   %s (SQLite, WAL)", self.store_dir)
        os.makedirs(self.store_dir, exist_ok=True)
        with Recovery() as recovery:
            self.recovery = recovery
            for account in list(self.hub.accounts.values()):
                await self.configure(account)
            self.recovery = None
        if recovery.streams:
            log.info("  Recovered %s streams, %s messages (%s bytes) in %.2fs",
                     f"{recovery.streams:,}", f"{recovery.msgs:,}", f"{recovery.bytes:,}",
                     time.monotonic() - recovery.started)

    async def configure(self, account: Account) -> None:
        """Enable JetStream for ``account`` or answer its API with "not enabled"."""
        if self._is_system(account):
            return
        if account.jetstream_limits is None:
            if account.name not in self.not_enabled and account.name not in self.accounts:
                self.not_enabled[account.name] = NotEnabledApi(self.hub, account)
            return
        await self.enable(account)

    def _is_system(self, account: Account) -> bool:
        return account is self.hub.system_account or account.name == SYSTEM_ACCOUNT

    async def enable(self, account: Account) -> JetStreamAccount:
        responder = self.not_enabled.pop(account.name, None)
        if responder is not None:
            responder.close()
        jsa = self.accounts.get(account.name)
        if jsa is None:
            jsa = self.accounts[account.name] = JetStreamAccount(self, account)
            try:
                await jsa.start()
            except BaseException:
                del self.accounts[account.name]  # nothing of it to stop
                jsa.client.release()
                raise
        return jsa

    def streams_capturing(self, account: Account, subject: bytes) -> int:
        """How many of the account's streams store a message published on ``subject``
        (each answers a publish that has a reply subject with a PubAck)."""
        jsa = self.accounts.get(account.name)
        if jsa is None:
            return 0
        # Remembered per subject (it was 27% of the CPU time of MQTT QoS 1 publishes).
        count = jsa.capturing.get(subject)
        if count is None:
            count = sum(1 for stream in jsa.streams.values()
                        if any(subject_matches(p, subject) for p in stream.subjects))
            if len(subject) <= _CAPTURING_LEN:
                remember(jsa.capturing, subject, count, _CAPTURING_KEPT)
        return count

    # -- server-wide limits -------------------------------------------------------------

    def server_max(self, storage: str) -> int:
        return self.max_memory if storage == "memory" else self.max_store

    def reserved(self, storage: str) -> int:
        """What every account's streams of one storage type reserve together."""
        return sum(jsa.reserved(storage) for jsa in self.accounts.values())

    def used(self, storage: str) -> int:
        return sum(jsa.used(storage) for jsa in self.accounts.values())

    async def stop(self) -> None:
        for jsa in self.accounts.values():
            await jsa.stop()
        self.accounts.clear()
        for responder in self.not_enabled.values():
            responder.close()
        self.not_enabled.clear()

"""JetStream for the whole hub: one :class:`JetStreamAccount` per account that uses it.

An account whose ``jetstream_limits`` is None has no JetStream; like nats-server, it still
gets an answer (10039, "JetStream not enabled for account") to its API requests.  The
server-wide ``max_mem`` / ``max_file`` bound what all accounts together reserve and store.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from jetport.core.jetstream.account import JetStreamAccount
from jetport.core.jetstream.disabled import NotEnabledApi
from jetport.core.log import log
from jetport.core.subjects import subject_matches

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.hub import Hub

SYSTEM_ACCOUNT = "$SYS"


class JetStream:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        opts = hub.options
        self.store_dir = os.path.join(os.path.abspath(opts.store_dir), "jetstream")
        self.max_memory = opts.jetstream_max_memory  # -1: no server-wide limit
        self.max_store = opts.jetstream_max_store
        self.accounts: dict[str, JetStreamAccount] = {}
        self.not_enabled: dict[str, NotEnabledApi] = {}

    async def start(self) -> None:
        log.info("Starting JetStream")
        log.info("  Storage:   %s (SQLite, WAL)", self.store_dir)
        os.makedirs(self.store_dir, exist_ok=True)
        for account in list(self.hub.accounts.values()):
            await self.configure(account)

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
            await jsa.start()
        return jsa

    def streams_capturing(self, account: Account, subject: bytes) -> int:
        """How many of the account's streams store a message published on ``subject``
        (each answers a publish that has a reply subject with a PubAck)."""
        jsa = self.accounts.get(account.name)
        if jsa is None:
            return 0
        return sum(1 for stream in jsa.streams.values()
                   if any(subject_matches(p, subject) for p in stream.subjects))

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

"""JetStream for the whole hub: one :class:`JetStreamAccount` per account that uses it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from core.jetstream.account import JetStreamAccount
from core.jetstream.models import AccountLimits
from core.log import log

if TYPE_CHECKING:
    from core.accounts import Account
    from core.hub import Hub


class JetStream:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        opts = hub.options
        self.store_dir = os.path.join(os.path.abspath(opts.store_dir), "jetstream")
        self.limits = AccountLimits()
        self.max_memory = opts.jetstream_max_memory
        self.max_store = opts.jetstream_max_store
        self.accounts: dict[str, JetStreamAccount] = {}

    async def start(self) -> None:
        log.info("Starting JetStream")
        log.info("  Storage:   %s (SQLite, WAL)", self.store_dir)
        os.makedirs(self.store_dir, exist_ok=True)
        for account in self.hub.accounts.values():
            await self.enable(account)

    async def enable(self, account: Account) -> JetStreamAccount:
        jsa = self.accounts.get(account.name)
        if jsa is None:
            jsa = self.accounts[account.name] = JetStreamAccount(self, account)
            await jsa.start()
        return jsa

    async def stop(self) -> None:
        for jsa in self.accounts.values():
            await jsa.stop()
        self.accounts.clear()

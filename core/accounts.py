"""Accounts: the unit of isolation.  Each has its own subject space."""

from __future__ import annotations

from core.router import Router

GLOBAL_ACCOUNT = "$G"


class Account:
    """A tenant: its subscriptions and routing never touch another account's."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.router = Router()

    def __repr__(self) -> str:
        return f"Account({self.name!r})"

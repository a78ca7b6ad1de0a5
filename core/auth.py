"""Authentication of a client's CONNECT credentials."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.options import Options


def _same(a: str, b: str) -> bool:
    """Constant-time comparison, so a wrong secret costs as long as a right one."""
    return hmac.compare_digest(a.encode(), b.encode())


@dataclass(frozen=True)
class Authenticator:
    """The server-wide single user or token of nats-server's ``authorization`` block."""

    username: str = ""
    password: str = ""
    token: str = ""

    @classmethod
    def from_options(cls, options: Options) -> Authenticator:
        return cls(options.username, options.password, options.token)

    @property
    def required(self) -> bool:
        return bool(self.username or self.token)

    def authenticate(self, opts: dict[str, Any]) -> str | None:
        """The user name the credentials prove (``""`` when none is needed), or None."""
        if not self.required:
            return ""
        if self.token:
            given = opts.get("auth_token")
            return "" if isinstance(given, str) and _same(given, self.token) else None
        user, pw = opts.get("user"), opts.get("pass")
        if not isinstance(user, str) or not isinstance(pw, str):
            return None
        ok = _same(user, self.username) & _same(pw, self.password)
        return user if ok else None

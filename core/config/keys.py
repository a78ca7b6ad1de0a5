"""Config keys are dispatched through :class:`KeyTable` instances, one per block: a block
is added by registering handlers, e.g.::

    @TOP_LEVEL_KEYS.key("websocket", "ws")
    def _websocket(opts: Options, entry: Entry) -> None: ...

Registering a name also removes it from that table's "not supported" list.  Anything
nats-server understands but Jetport cannot honour is refused with the file and line
rather than ignored: a half-applied config is worse than a refused one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jetport.core.config.file import ConfDict
from jetport.core.config.options import Options, OptionsError
from jetport.core.config.values import parse_duration, split_host_port


@dataclass(frozen=True)
class Entry:
    """One ``key: value`` of a config block, with typed accessors that report file:line."""

    key: str
    value: Any
    where: str

    def error(self, message: str) -> OptionsError:
        return OptionsError(f"{self.where}: {message}")

    def _wrong(self, expected: str) -> OptionsError:
        return self.error(f"{self.key!r} expects {expected}, got {self.value!r}")

    def string(self) -> str:
        if not isinstance(self.value, str):
            raise self._wrong("a string")
        return self.value

    def integer(self) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self._wrong("an integer")
        return self.value

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self._wrong("a boolean")
        return self.value

    def block(self) -> ConfDict:
        if not isinstance(self.value, ConfDict):
            raise self._wrong("a block { ... }")
        return self.value

    def seconds(self) -> float:
        """A duration string (``"2m"``) or a number of seconds."""
        value = self.value
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except ValueError as exc:
                raise self.error(f"error parsing {self.key}: {exc}") from exc
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise self._wrong('a duration such as "2m" or a number of seconds')


Handler = Callable[[Options, Entry], None]


class KeyTable:
    """The keys one config block accepts, and those known but not supported yet."""

    def __init__(self, section: str) -> None:
        self.section = section  # prefix for messages, e.g. "tls."
        self.handlers: dict[str, Handler] = {}
        self.unsupported: dict[str, str] = {}

    def key(self, *names: str) -> Callable[[Handler], Handler]:
        """Decorator registering a handler under ``names`` (matched case-insensitively)."""

        def register(handler: Handler) -> Handler:
            for name in names:
                self.handlers[name.lower()] = handler
                self.unsupported.pop(name.lower(), None)
            return handler

        return register

    def not_supported(self, feature: str, *names: str) -> None:
        """Mark nats-server keys Jetport refuses, naming the missing ``feature``."""
        for name in names:
            if name.lower() not in self.handlers:
                self.unsupported[name.lower()] = feature

    def apply(self, opts: Options, block: ConfDict) -> None:
        """Run every key of ``block`` through its handler; report all problems at once."""
        problems: list[str] = []
        for key, value in block.items():
            entry = Entry(key, value, block.where(key))
            name = key.lower()
            try:
                if name in self.handlers:
                    self.handlers[name](opts, entry)
                elif name in self.unsupported:
                    raise entry.error(
                        f'"{self.section}{key}" is not supported by Jetport '
                        f"({self.unsupported[name]})"
                    )
                elif not block.used_as_variable(key):  # nats-server: variables are not fields
                    raise entry.error(f'unknown field "{self.section}{key}"')
            except OptionsError as exc:
                problems.append(str(exc))
        if problems:
            raise OptionsError("\n".join(problems))


TOP_LEVEL_KEYS = KeyTable("")
AUTHORIZATION_KEYS = KeyTable("authorization.")
TLS_KEYS = KeyTable("tls.")
JETSTREAM_KEYS = KeyTable("jetstream.")


def listen_address(entry: Entry) -> tuple[str, int]:
    """``port`` or ``host:port`` (``listen:``-style keys); host is empty for a port."""
    if isinstance(entry.value, int) and not isinstance(entry.value, bool):
        return "", entry.value
    if not isinstance(entry.value, str):
        raise entry.error(f"{entry.key!r} expects a port or host:port, got {entry.value!r}")
    try:
        return split_host_port(entry.value)
    except ValueError as exc:
        raise entry.error(str(exc)) from exc


def simple(table: KeyTable, target: str, kind: str, *names: str) -> None:
    """Register keys that copy a string/integer/boolean/seconds value into one field."""

    def handler(opts: Options, entry: Entry) -> None:
        opts.set(target, getattr(entry, kind)())

    table.key(*names)(handler)

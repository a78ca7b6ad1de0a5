"""Bounded caches of derived values (subject mappings, parsed lines, matches)."""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def remember(cache: dict[K, V], key: K, value: V, most: int) -> V:
    """Keep ``value`` under ``key`` in ``cache``, emptied once it holds ``most`` entries:
    a bound without per-entry bookkeeping, for values that are cheap to derive again."""
    if len(cache) >= most:
        cache.clear()
    cache[key] = value
    return value

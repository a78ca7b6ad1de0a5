"""``jetport bench``: a raw-protocol load generator for NATS-compatible servers."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point used by ``jetport bench``; returns a process exit status."""
    from .cli import main as _main

    return _main(argv)


__all__ = ["main"]

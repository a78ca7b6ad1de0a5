"""Values in nats-server's spellings: Go durations, sizes, host:port."""

from __future__ import annotations

import re
from typing import Any

from jetport.core.config.file import SIZE_MULTIPLIERS

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string such as ``"1h2m"``, ``"1.5s"`` or ``"300ms"``."""
    rest = text
    sign = 1.0
    if rest[:1] in ("+", "-"):
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    while rest:
        match = _DURATION_PART.match(rest)
        assert match is not None  # the pattern matches the empty string
        whole, frac, unit = match.groups()
        if not whole and not frac:
            raise ValueError(f"invalid duration {text!r}")
        if not unit:
            raise ValueError(f"missing unit in duration {text!r}")
        if unit not in _DURATION_UNITS:
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}")
        total += float(f"{whole or 0}.{frac or 0}") * _DURATION_UNITS[unit]
        rest = rest[match.end() :]
    return sign * total


_SIZE = re.compile(r"(-?\d+)([A-Za-z]*)")


def parse_size(value: int | str) -> int:
    """Bytes in an integer or a size string, with the config file's suffix rules.

    ``1K`` is 1000 and ``1KB``/``1Ki``/``1KiB`` are 1024 (likewise M, G, T, P, E).
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size, got {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(value.strip())
    suffix = match.group(2).lower() if match else ""
    if match is None or suffix not in SIZE_MULTIPLIERS:
        raise ValueError(f"invalid size {value!r}")
    return int(match.group(1)) * SIZE_MULTIPLIERS[suffix]


def storage_size(value: Any) -> int:
    """JetStream limits: an integer, or a string ending in K, M, G or T (powers of 1024).

    This string form is nats-server's own, separate from the integer suffixes above:
    ``max_mem: 1G`` is 10^9 bytes while ``max_mem: "1G"`` is 2^30.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an integer or a string")
    if value == "":
        return 0
    shift = {"K": 10, "M": 20, "G": 30, "T": 40}.get(value[-1])
    if shift is None:
        raise ValueError("sizes defined as strings must end in K, M, G or T")
    if not re.fullmatch(r"[+-]?\d+", value[:-1]):
        raise ValueError(f"invalid size {value!r}")
    return int(value[:-1]) << shift


def split_host_port(text: str) -> tuple[str, int]:
    """Split ``host:port`` like Go's net.SplitHostPort (``[v6]:port`` included)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError(f"could not parse address string {text!r}")
        host, port = text[1:end], text[end + 2 :]
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError(f"could not parse address string {text!r}: missing port")
        if ":" in host:
            raise ValueError(f"could not parse address string {text!r}: too many colons")
    if not re.fullmatch(r"[+-]?\d+", port):
        raise ValueError(f"could not parse port {port!r}")
    return host, int(port)

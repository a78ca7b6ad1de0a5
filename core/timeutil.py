"""Time as nats-server writes it: RFC 3339 with nanoseconds, Go-style durations."""

from __future__ import annotations

import time

ZERO_TIME = "0001-01-01T00:00:00Z"
#: Nanoseconds in a second: JetStream counts time in nanoseconds, as Go does.
NS_PER_S = 1_000_000_000
#: Go's zero ``time.Time`` (0001-01-01T00:00:00Z) in Unix nanoseconds.
ZERO_TIME_NS = -62_135_596_800 * NS_PER_S


def rfc3339(ts: float | None = None, ns: int | None = None) -> str:
    """UTC timestamp with nanoseconds, trailing zeros trimmed, as Go's RFC3339Nano."""
    if ns is None:
        ns = time.time_ns() if ts is None else int(ts * 1e9)
    secs, frac = divmod(ns, NS_PER_S)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def uptime(seconds: float) -> str:
    """nats-server's compact uptime: ``1y2d3h4m5s`` with leading zero units dropped."""
    s = int(seconds)
    parts: list[str] = []
    for unit, size in (("y", 365 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        n, s = divmod(s, size)
        if n or parts:
            parts.append(f"{n}{unit}")
    parts.append(f"{s}s")
    return "".join(parts)


def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration.String`` prints it (``1m30s``, ``150ms``)."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_trim(ns / 1e3)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_trim(ns / 1e6)}ms"
    h, rem = divmod(ns, 3600 * 10**9)
    m, rem = divmod(rem, 60 * 10**9)
    out = sign
    if h:
        out += f"{h}h"
    if h or m:
        out += f"{m}m"
    return out + f"{_trim(rem / 1e9)}s"


def _trim(x: float) -> str:
    return f"{x:.9f}".rstrip("0").rstrip(".")

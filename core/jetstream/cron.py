"""Message schedule expressions (the ``Nats-Schedule`` header) and when they fire next.

Pure: no clock of its own (the caller passes "now"), no I/O.  The accepted forms and
their edge cases are nats-server's: ``@at <RFC 3339 time>`` fires once; ``@every
<Go duration>`` (a second or more) and 6-field cron expressions (seconds first, with the
``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight`` and
``@hourly`` shorthands) repeat.  Only cron expressions take a time zone.  A repeating
schedule that missed fire times (a restart) fires once and skips ahead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import NamedTuple
from zoneinfo import ZoneInfo

from jetport.core.config.values import parse_duration
from jetport.core.timeutil import NS_PER_S


class ScheduleError(ValueError):
    """The expression is not one nats-server accepts."""


class Fire(NamedTuple):
    """When a schedule fires next (in its time zone) and whether it repeats after."""

    at: datetime
    repeat: bool

    @property
    def ns(self) -> int:
        return to_ns(self.at)

    def header(self) -> str:
        """The time as ``Nats-Schedule-Next`` carries it (RFC 3339, whole seconds)."""
        return rfc3339_seconds(self.at)


_SHORTHANDS = {
    "@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})")
_INT = re.compile(r"[+-]?\d+")
#: Cron searches this many years past the start before giving up (February 30th).
_YEARS = 5


def next_fire(pattern: str, tz: str, ts: int, now: int) -> Fire:
    """When ``pattern`` fires after ``ts`` (ns), no earlier than one fire before ``now``.

    ``tz`` is the time zone header's value ("" for none); raises ScheduleError.
    """
    if pattern.startswith("@at "):
        if tz:
            raise ScheduleError("a time zone is not supported with @at")
        return Fire(parse_rfc3339(pattern[4:]), False)
    if pattern.startswith("@every "):
        if tz:
            raise ScheduleError("a time zone is not supported with @every")
        every = _interval(pattern[7:])
        due = round_second(ts) + every
        if due < now:
            due = round_second(now) + every
        return Fire(from_ns(due, UTC), True)
    cron = Cron.parse(_SHORTHANDS.get(pattern, pattern))
    zone = load_zone(tz) if tz else UTC
    at = cron.after(ts, zone)
    if to_ns(at) < now:
        at = cron.after(round_second(now), zone)
    return Fire(at, True)


def _interval(text: str) -> int:
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise ScheduleError(f"invalid interval {text!r}") from None
    if seconds < 1:
        raise ScheduleError("an interval must be at least a second")
    return round(seconds * NS_PER_S)


def load_zone(name: str) -> tzinfo:
    """A named time zone (IANA name, ``UTC`` or ``Local``); fixed offsets are not zones."""
    if name == "Local":
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return local
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found, not a key, a directory
        raise ScheduleError(f"unknown time zone {name!r}") from None


def parse_rfc3339(text: str) -> datetime:
    """Go's ``time.RFC3339`` parse: ``T`` and ``Z`` upper case, fraction optional."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ScheduleError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, offset = m.group(7) or "", m.group(8)
    if offset == "Z":
        zone: tzinfo = UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            raise ScheduleError(f"bad time zone offset in {text!r}")
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        at = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError as exc:
        raise ScheduleError(str(exc)) from None
    return at + timedelta(microseconds=int(frac.ljust(9, "0")[:6] or 0))


def round_second(ns: int) -> int:
    """Go's ``Round(time.Second)``: halves round up."""
    return (ns + NS_PER_S // 2) // NS_PER_S * NS_PER_S


def to_ns(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1) * 1000


def from_ns(ns: int, zone: tzinfo) -> datetime:
    return (_EPOCH + timedelta(microseconds=ns // 1000)).astimezone(zone)


def rfc3339_seconds(at: datetime) -> str:
    """Go's ``Format(time.RFC3339)``: whole seconds, ``Z`` for a zero offset."""
    offset = at.utcoffset() or timedelta(0)
    text = at.strftime("%Y-%m-%dT%H:%M:%S")
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- cron ------------------------------------------------------------------------------


class _Field(NamedTuple):
    low: int
    high: int
    names: dict[str, int]


_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_FIELDS = (_Field(0, 59, {}), _Field(0, 59, {}), _Field(0, 23, {}), _Field(1, 31, {}),
           _Field(1, 12, _MONTHS), _Field(0, 6, _DAYS))


@dataclass(frozen=True)
class Cron:
    """A parsed 6-field expression: second minute hour day-of-month month day-of-week."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 is Sunday
    #: A ``*`` in the day of month or the day of week: then both must match, else either.
    both_days: bool

    @classmethod
    def parse(cls, pattern: str) -> Cron:
        fields = pattern.split()
        if len(fields) != 6:
            raise ScheduleError(f"a cron expression has 6 fields, not {len(fields)}")
        parsed = [_parse_field(text, spec) for text, spec in zip(fields, _FIELDS, strict=True)]
        (sec, _), (mins, _), (hrs, _), (dom, dom_star), (mon, _), (dow, dow_star) = parsed
        return cls(tuple(sorted(sec)), tuple(sorted(mins)), tuple(sorted(hrs)),
                   frozenset(dom), frozenset(mon), frozenset(dow), dom_star or dow_star)

    def _day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.weekday() + 1) % 7 in self.weekdays
        return in_month and in_week if self.both_days else in_month or in_week

    def after(self, ts: int, zone: tzinfo) -> datetime:
        """The first matching second after ``ts`` rounded to a second, in ``zone``."""
        start = from_ns(round_second(ts) + NS_PER_S, zone)
        start_key = (start.hour, start.minute, start.second)
        day, last_year = start.date(), start.year + _YEARS
        while day.year <= last_year:
            if self._day(day):
                for key in self._times(start_key if day == start.date() else (0, 0, 0)):
                    at = _local(day, key, zone)
                    if at is not None and at >= start:
                        return at
            day += timedelta(days=1)
        raise ScheduleError("the expression matches no time in the next years")

    def _times(self, first: tuple[int, int, int]) -> Iterator[tuple[int, int, int]]:
        """The day's matching times from ``first`` on, earliest first."""
        h0, m0, _ = first
        for h in self.hours:
            if h < h0:
                continue
            for m in self.minutes:
                if (h, m) >= (h0, m0):
                    yield from ((h, m, s) for s in self.seconds if (h, m, s) >= first)


def _local(day: date, key: tuple[int, int, int], zone: tzinfo) -> datetime | None:
    """The wall time in ``zone``, or None when a DST change skips it."""
    at = datetime(day.year, day.month, day.day, *key, tzinfo=zone)
    back = at.astimezone(UTC).astimezone(zone)
    return at if back.replace(tzinfo=None) == at.replace(tzinfo=None) else None


def _parse_field(text: str, spec: _Field) -> tuple[set[int], bool]:
    """The values a comma-separated list of ranges allows, and whether it has a ``*``."""
    values: set[int] = set()
    star = False
    for part in (p for p in text.split(",") if p):
        got, part_star = _parse_range(part, spec)
        values |= got
        star = star or part_star
    return values, star


def _parse_range(expr: str, spec: _Field) -> tuple[set[int], bool]:
    span, _, step_text = expr.partition("/")
    if "/" in step_text:
        raise ScheduleError(f"too many slashes: {expr}")
    bounds = span.split("-")
    star = bounds[0] in ("*", "?")
    if star:
        low, high = spec.low, spec.high
    else:
        if len(bounds) > 2:
            raise ScheduleError(f"too many hyphens: {expr}")
        low = _number(bounds[0], spec.names)
        high = _number(bounds[1], spec.names) if len(bounds) == 2 else low
    step = 1
    if "/" in expr:
        step = _number(step_text, {})
        if len(bounds) == 1:
            high = spec.high
        if step > 1:
            star = False
    if low < spec.low or high > spec.high or low > high or step == 0:
        raise ScheduleError(f"out of range: {expr}")
    return set(range(low, high + 1, step)), star


def _number(text: str, names: dict[str, int]) -> int:
    named = names.get(text.lower())
    if named is not None:
        return named
    if not _INT.fullmatch(text) or int(text) < 0:
        raise ScheduleError(f"not a number: {text!r}")
    return int(text)

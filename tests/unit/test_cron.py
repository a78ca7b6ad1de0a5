"""Message schedule expressions and their next fire times, without a server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jetport.core.jetstream.cron import (
    Cron,
    ScheduleError,
    next_fire,
    parse_rfc3339,
    round_second,
    to_ns,
)

S = 1_000_000_000


def ns(text: str) -> int:
    return to_ns(parse_rfc3339(text))


def fire(pattern: str, at: str, tz: str = "", now: str | None = None) -> str:
    """The ``Nats-Schedule-Next`` text for ``pattern`` stored at ``at``."""
    return next_fire(pattern, tz, ns(at), ns(now or at)).header()


@pytest.mark.parametrize(("pattern", "at", "expected"), [
    ("@every 1s", "2030-05-01T10:00:00Z", "2030-05-01T10:00:01Z"),
    ("@every 1h30m", "2030-05-01T10:00:00Z", "2030-05-01T11:30:00Z"),
    # the stored time is rounded to a second first (half up), as Go's Round
    ("@every 2s", "2030-05-01T10:00:00.5Z", "2030-05-01T10:00:03Z"),
    ("@every 2s", "2030-05-01T10:00:00.499Z", "2030-05-01T10:00:02Z"),
    ("@hourly", "2030-05-01T10:20:00Z", "2030-05-01T11:00:00Z"),
    ("@daily", "2030-05-01T10:20:00Z", "2030-05-02T00:00:00Z"),
    ("@midnight", "2030-05-01T10:20:00Z", "2030-05-02T00:00:00Z"),
    ("@weekly", "2030-05-01T10:20:00Z", "2030-05-05T00:00:00Z"),  # a Sunday
    ("@monthly", "2030-05-01T10:20:00Z", "2030-06-01T00:00:00Z"),
    ("@yearly", "2030-05-01T10:20:00Z", "2031-01-01T00:00:00Z"),
    ("@annually", "2030-05-01T10:20:00Z", "2031-01-01T00:00:00Z"),
    # cron fires strictly after the (rounded) time it starts from
    ("0 * * * * *", "2030-05-01T10:20:00Z", "2030-05-01T10:21:00Z"),
    ("*/5 * * * * *", "2030-05-01T10:20:03Z", "2030-05-01T10:20:05Z"),
    ("10-20/5 * * * * *", "2030-05-01T10:20:16Z", "2030-05-01T10:20:20Z"),
    ("7/20 * * * * *", "2030-05-01T10:20:28Z", "2030-05-01T10:20:47Z"),
    ("0 30 9 * * MON-FRI", "2030-05-03T12:00:00Z", "2030-05-06T09:30:00Z"),  # Fri -> Mon
    ("0 0 0 * jan ?", "2030-05-01T10:00:00Z", "2031-01-01T00:00:00Z"),
    ("0 0 0 29 2 *", "2030-05-01T10:00:00Z", "2032-02-29T00:00:00Z"),
    # day of month and day of week, both restricted: either matches
    ("0 0 0 15 * 1", "2030-05-01T10:00:00Z", "2030-05-06T00:00:00Z"),
    # one of them a star: both must match
    ("0 0 0 */1 * 1", "2030-05-01T10:00:00Z", "2030-05-06T00:00:00Z"),
    ("0 0 0 1 * *", "2030-05-01T10:00:00Z", "2030-06-01T00:00:00Z"),
])
def test_next_fire_times(pattern: str, at: str, expected: str) -> None:
    assert fire(pattern, at) == expected


def test_repeating_schedules_skip_what_they_missed() -> None:
    """After a restart a repeating schedule fires once and resumes from now."""
    assert fire("@every 10s", "2030-05-01T10:00:00Z",
                now="2030-05-01T11:00:04Z") == "2030-05-01T11:00:14Z"
    assert fire("0 0 * * * *", "2030-05-01T10:00:00Z",
                now="2030-05-01T13:30:00Z") == "2030-05-01T14:00:00Z"


def test_at_fires_once_at_its_time_even_in_the_past() -> None:
    got = next_fire("@at 2020-01-01T00:00:00Z", "", ns("2030-01-01T00:00:00Z"),
                    ns("2030-01-01T00:00:00Z"))
    assert not got.repeat
    assert got.ns == ns("2020-01-01T00:00:00Z")
    assert next_fire("@at 2099-01-01T00:00:00+02:00", "", 0, 0).ns == ns(
        "2098-12-31T22:00:00Z")
    assert next_fire("@at 2099-01-01T00:00:00.25Z", "", 0, 0).ns == ns(
        "2099-01-01T00:00:00Z") + S // 4


@pytest.mark.parametrize(("pattern", "tz", "at", "expected"), [
    ("0 0 0 * * *", "Europe/Amsterdam", "2030-05-01T10:00:00Z", "2030-05-02T00:00:00+02:00"),
    ("0 0 0 * * *", "Europe/Amsterdam", "2030-12-01T10:00:00Z", "2030-12-02T00:00:00+01:00"),
    ("0 0 9 * * *", "America/New_York", "2030-05-01T10:00:00Z", "2030-05-01T09:00:00-04:00"),
    ("@daily", "Asia/Tokyo", "2030-05-01T10:00:00Z", "2030-05-02T00:00:00+09:00"),
    ("0 0 0 * * *", "UTC", "2030-05-01T10:00:00Z", "2030-05-02T00:00:00Z"),
    # 02:30 does not exist on the spring-forward day: the next day's is the next
    ("0 30 2 * * *", "Europe/Amsterdam", "2030-03-30T12:00:00Z", "2030-04-01T02:30:00+02:00"),
])
def test_cron_in_a_time_zone(pattern: str, tz: str, at: str, expected: str) -> None:
    assert fire(pattern, at, tz) == expected


@pytest.mark.parametrize(("pattern", "tz"), [
    ("", ""), ("garbage", ""), ("@at bad", ""), ("@at 2099-01-01 00:00:00Z", ""),
    ("@at 2099-01-01", ""), ("@at 2099-01-01t00:00:00z", ""), ("@at 2099-13-01T00:00:00Z", ""),
    ("@every 500ms", ""), ("@every 999ms", ""), ("@every -1s", ""), ("@every 1", ""),
    ("@every  1s", ""), ("@reboot", ""), ("@HOURLY", ""), ("* * * * *", ""),
    ("0 0 0 * * * *", ""), ("60 * * * * *", ""), ("0 0 0 * * 7", ""), ("0 0 0 31 2 *", ""),
    ("1-2-3 * * * * *", ""), ("*/0 * * * * *", ""), ("1/2/3 * * * * *", ""),
    ("5-1 * * * * *", ""), ("-1 * * * * *", ""), ("0 0 0 0 * *", ""),
    # a time zone only goes with cron
    ("@every 1s", "UTC"), ("@at 2099-01-01T00:00:00Z", "UTC"),
    ("0 0 0 * * *", "Mars/Base"), ("0 0 0 * * *", "+02:00"),
])
def test_invalid_expressions(pattern: str, tz: str) -> None:
    with pytest.raises(ScheduleError):
        next_fire(pattern, tz, 0, 0)


def test_fields_and_names() -> None:
    cron = Cron.parse("0,30 1-3 */6 ? JAN,jul sun")
    assert cron.seconds == (0, 30)
    assert cron.minutes == (1, 2, 3)
    assert cron.hours == (0, 6, 12, 18)
    assert cron.months == {1, 7}
    assert cron.weekdays == {0}
    assert cron.both_days  # '?' is a star


def test_round_second_rounds_halves_up() -> None:
    assert round_second(S + S // 2) == 2 * S
    assert round_second(S + S // 2 - 1) == S
    assert parse_rfc3339("2030-01-01T00:00:00Z") == datetime(2030, 1, 1, tzinfo=UTC)

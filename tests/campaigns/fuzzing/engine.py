"""The loop every fuzz target shares: generate, run under a time limit, classify, shrink.

A target is three functions: ``generate`` makes one :class:`Case` from a seeded
``random.Random`` (so a run is reproducible from its seed alone), ``run`` feeds it to the
parser and returns the rejection kinds it saw, and ``reproducer`` writes the case as a
standalone Python snippet.  ``run`` signals a broken contract by raising
:class:`Violation`; any other exception escaping it is a crash of the parser itself.

Hangs are caught twice: an input that takes longer than ``soft_limit`` seconds is
reported once it returns, and one that runs past ``hard_limit`` is interrupted by
SIGALRM (which also stops a regular expression backtracking inside the C matcher), so a
campaign never stalls on a single input.
"""

from __future__ import annotations

import random
import re
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

#: The project's sources: a crash is located at the innermost frame among them.
PROJECT = Path(__file__).resolve().parents[3]
HARNESS = Path(__file__).resolve().parents[1]
#: At most this many distinct failures are kept (with a reproducer) per target.
MAX_KEPT_FAILURES = 20
#: After this many hangs on one target, inputs are interrupted just past the soft limit:
#: the first shows how slow the slow path is, the others need not cost the hard limit.
HANG_QUOTA = 1
#: The scenario of a case read whole and then in each possible pair of reads.
EVERY_SPLIT = "every-split"
#: A rejection kind starting with this is an anomaly (see :attr:`Report.anomalies`).
ANOMALY = "anomaly: "


class Violation(Exception):
    """The parser returned, but broke its contract (wrong error type, a limit ignored...)."""


class Hang(BaseException):
    """Raised by the watchdog inside an input that ran past the hard time limit.

    A BaseException, so that the parser's own ``except Exception`` cannot swallow it.
    """


@dataclass(frozen=True)
class Case:
    """One input: the data, the offsets where it is cut into separate reads, and the
    parser's settings (``params``) and scenario (``mode``) as the target defines them."""

    data: bytes | str
    cuts: tuple[int, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    mode: str = ""

    def chunks(self) -> list[Any]:
        """The data cut at ``cuts`` (ignoring cuts outside it): the reads to feed."""
        points = sorted({c for c in self.cuts if 0 < c < len(self.data)})
        bounds = [0, *points, len(self.data)]
        return [self.data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]

    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Target:
    """A parser under fuzz: how to make inputs, run one, and print a reproducer."""

    name: str
    generate: Callable[[random.Random], Case]
    run: Callable[[Case], Iterable[str]]
    reproducer: Callable[[Case], str]
    #: Deterministic probes of the declared limits; each returns the problems it found.
    limit_checks: Callable[[], list[str]] = lambda: []


@dataclass
class Failure:
    """One distinct failure (by signature) with the smallest input seen for it."""

    kind: str  # "crash" or "hang"
    signature: str
    case: Case
    detail: str
    count: int = 1


@dataclass
class Report:
    """What one campaign on one target saw."""

    target: str
    inputs: int = 0
    seconds: float = 0.0
    crashes: int = 0
    hangs: int = 0
    slowest: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)
    #: Oddities that break no contract (e.g. a close whose -ERR text depends on how the
    #: bytes were cut into reads): reported, not failed.
    anomalies: Counter[str] = field(default_factory=Counter)
    #: The smallest input seen for each anomaly.
    anomaly_cases: dict[str, Case] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)
    limit_problems: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> bool:
        return not (self.crashes or self.hangs)


class Watchdog:
    """Interrupt an input that runs past ``limit`` seconds, with SIGALRM.

    Only possible in the main thread on a POSIX system; elsewhere it does nothing and
    only the soft limit applies.  The previous handler and timer (pytest-timeout uses
    the same signal) are put back on exit, with the time spent here deducted.
    """

    def __init__(self, limit: float | None) -> None:
        usable = hasattr(signal, "setitimer") and \
            threading.current_thread() is threading.main_thread()
        self.limit = limit if usable else None
        self._prev_handler: Any = None
        self._prev_timer = (0.0, 0.0)
        self._entered = 0.0

    def __enter__(self) -> Watchdog:
        if self.limit:
            self._entered = time.monotonic()
            self._prev_timer = signal.setitimer(signal.ITIMER_REAL, 0)
            self._prev_handler = signal.signal(signal.SIGALRM, _raise_hang)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.limit:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._prev_handler)
        delay, interval = self._prev_timer
        if delay > 0:
            left = delay - (time.monotonic() - self._entered)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), interval)

    def arm(self) -> None:
        if self.limit:
            signal.setitimer(signal.ITIMER_REAL, self.limit)

    def disarm(self) -> None:
        if self.limit:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _raise_hang(signum: int, frame: Any) -> None:
    raise Hang()


def crash_signature(exc: BaseException) -> str:
    """Exception type and the innermost project frame it passed: one per distinct bug."""
    if isinstance(exc, Violation):
        first = str(exc).splitlines()[0] if str(exc) else ""
        return "Violation: " + re.sub(r"\d+", "N", first)[:120]
    # walk_tb, not extract_tb: a RecursionError has a thousand frames, and their source
    # lines are not needed here.
    frames = [(frame.f_code.co_filename, lineno)
              for frame, lineno in traceback.walk_tb(exc.__traceback__)]
    where = frames[-1] if frames else None
    for filename, lineno in reversed(frames):
        path = Path(filename)
        if path.is_relative_to(PROJECT) and not path.is_relative_to(HARNESS) \
                and ".venv" not in path.parts:
            where = (filename, lineno)
            break
    place = f"{Path(where[0]).name}:{where[1]}" if where else "?"
    return f"{type(exc).__name__} at {place}"


def run_one(target: Target, case: Case, dog: Watchdog) -> tuple[list[str], BaseException | None,
                                                                  float]:
    """Run ``case``; return its rejection kinds, the exception it raised, and its time."""
    start = time.perf_counter()
    kinds: list[str] = []
    error: BaseException | None = None
    try:
        dog.arm()
        try:
            kinds = list(target.run(case))
        finally:
            dog.disarm()
    except Hang as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - any exception is the finding (a crash)
        error = exc
    return kinds, error, time.perf_counter() - start


def campaign(target: Target, count: int, seed: int, *, budget: float | None = None,
             soft_limit: float = 1.0, hard_limit: float | None = 10.0, limits: bool = True,
             progress: Callable[[Report], None] | None = None) -> Report:
    """Run ``count`` generated inputs (fewer if ``budget`` seconds run out) on ``target``,
    after its limit checks unless ``limits`` is false."""
    report = Report(target.name)
    rng = random.Random(f"{seed}/{target.name}")
    start = last_note = time.perf_counter()
    with Watchdog(hard_limit) as dog:
        for problem in target.limit_checks() if limits else []:
            report.crashes += 1
            report.limit_problems.append(problem)
        for _ in range(count):
            case = target.generate(rng)
            kinds, error, elapsed = run_one(target, case, dog)
            report.inputs += 1
            for kind in kinds:
                if kind.startswith(ANOMALY):
                    _note(report, kind[len(ANOMALY):], case)
                else:
                    report.kinds[kind] += 1
            report.slowest = max(report.slowest, elapsed)
            if isinstance(error, Hang) or elapsed > soft_limit:
                report.hangs += 1
                if report.hangs == HANG_QUOTA and dog.limit:
                    dog.limit = min(dog.limit, soft_limit + 0.05)
                scenario = case.mode or case.params.get("op", "")
                _keep(report, "hang", f"over {soft_limit:g} s in {target.name} {scenario}".strip(),
                      case, partial(_timing, elapsed, error is not None))
            elif error is not None:
                report.crashes += 1
                _keep(report, "crash", crash_signature(error), case,
                      partial(_describe, error))
            now = time.perf_counter()
            if progress is not None and now - last_note > 10:
                report.seconds = now - start
                progress(report)
                last_note = now
            if budget is not None and now - start > budget:
                break
        report.seconds = time.perf_counter() - start
        for failure in report.failures.values():
            if failure.kind == "crash":
                failure.case = shrink(target, failure.case, failure.signature, dog)
    return report


def _timing(elapsed: float, interrupted: bool) -> str:
    return f"{elapsed:.2f} s" + (" (interrupted)" if interrupted else "")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, Violation):
        return f"Violation: {exc}"
    return "".join(traceback.format_exception(exc)).rstrip()


def _note(report: Report, anomaly: str, case: Case) -> None:
    report.anomalies[anomaly] += 1
    known = report.anomaly_cases.get(anomaly)
    if (known is None and len(report.anomaly_cases) < MAX_KEPT_FAILURES) or (
            known is not None and case.size() < known.size()):
        report.anomaly_cases[anomaly] = case


def _keep(report: Report, kind: str, signature: str, case: Case,
          detail: Callable[[], str]) -> None:
    """Count a failure; keep the smallest input per signature (the first of a hang).

    ``detail`` is only called for a case that is kept: formatting a traceback of a
    thousand frames for every repeat of a known crash would dominate the run.
    """
    known = report.failures.get(signature)
    if known is not None:
        known.count += 1
        if kind == "crash" and case.size() < known.case.size():
            known.case, known.detail = case, detail()
    elif len(report.failures) < MAX_KEPT_FAILURES:
        report.failures[signature] = Failure(kind, signature, case, detail())


def shrink(target: Target, case: Case, signature: str, dog: Watchdog,
           max_tries: int = 400, max_seconds: float = 20.0) -> Case:
    """A smaller case failing with the same signature: one read, then bytes removed.

    Greedy delta debugging: halving chunk sizes, dropping each chunk that keeps the
    failure.  Bounded in tries and time; the original case is kept if nothing helps.
    """
    deadline = time.perf_counter() + max_seconds
    tries = 0

    def same(candidate: Case) -> bool:
        nonlocal tries
        tries += 1
        _, error, _ = run_one(target, candidate, dog)
        return error is not None and not isinstance(error, Hang) \
            and crash_signature(error) == signature

    if case.cuts and same(replace(case, cuts=())):
        case = replace(case, cuts=())
    step = max(len(case.data) // 2, 1)
    while step >= 1 and tries < max_tries and time.perf_counter() < deadline:
        pos, shrunk = 0, False
        while pos < len(case.data) and tries < max_tries and time.perf_counter() < deadline:
            data = case.data[:pos] + case.data[pos + step:]
            candidate = replace(case, data=data, cuts=tuple(c for c in case.cuts if c < len(data)))
            if same(candidate):
                case, shrunk = candidate, True
            else:
                pos += step
        if not shrunk:
            step //= 2
    return case


def summary(report: Report, reproducer: Callable[[Case], str], width: int = 3000) -> str:
    """Every failure of ``report`` with its reproducer: an assertion message."""
    lines = [f"{report.target}: {report.crashes} crashes, {report.hangs} hangs in "
             f"{report.inputs} inputs", *report.limit_problems]
    for f in report.failures.values():
        lines += [f"--- {f.kind} x{f.count}: {f.signature}", f.detail[-width:],
                  reproducer(f.case)]
    return "\n".join(lines)


def literal(data: bytes | str) -> str:
    """``data`` as a Python expression, with long repeats of a 1-4 character unit written
    as ``unit * n``: reproducers of pathological inputs (thousands of ``[``, of ``-``,
    or base64 of them) stay short enough to read and paste."""
    parts: list[str] = []
    i = plain = 0
    while i < len(data):
        unit, count = _repeat_at(data, i)
        if unit * count >= 16:
            if plain < i:
                parts.append(repr(data[plain:i]))
            parts.append(f"{data[i:i + unit]!r} * {count}")
            i = plain = i + unit * count
        else:
            i += 1
    if plain < len(data) or not parts:
        parts.append(repr(data[plain:]))
    return " + ".join(parts)


def _repeat_at(data: bytes | str, i: int) -> tuple[int, int]:
    """The unit length (1-4) repeated most at ``i``, and how many times."""
    best = (1, 1)
    for unit in (1, 2, 3, 4):
        piece = data[i:i + unit]
        if len(piece) < unit:
            break
        count = 1
        while data[i + unit * count:i + unit * (count + 1)] == piece:
            count += 1
        if count >= 4 and unit * count > best[0] * best[1]:
            best = (unit, count)
    return best


def chunks_literal(case: Case) -> str:
    """The reads of ``case`` as a Python list expression."""
    return "[" + ", ".join(literal(c) for c in case.chunks()) + "]"


def split_loop(case: Case, make: str) -> str:
    """Reproducer lines feeding ``case.data`` to a fresh ``make`` in each pair of reads."""
    return (f"data = {literal(case.data)}\n"
            "for i in range(len(data) + 1):\n"
            f"    codec = {make}\n"
            "    print(i, codec.receive_data(data[:i]) + codec.receive_data(data[i:]))")

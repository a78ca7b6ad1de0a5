"""Fuzzing campaign for Jetport's parsers: NATS and MQTT codecs, WebSocket framing, the
configuration file reader (and the options built from it), and the JWT decoder.

    python tests/campaigns/fuzz.py [--target nats|mqtt|ws|conf|jwt|all] [--count N]
                                   [--seed S] [--budget SECONDS]

Inputs come from each parser's grammar, mostly valid and then damaged, plus raw random
bytes; the same seed gives the same inputs.  Every input runs under a time limit.  At
the end a Markdown table gives, per target: inputs run, inputs per second, crashes,
hangs and the distinct rejections seen.  The exit status is 1 when anything crashed or
hung, and each distinct failure is printed with a standalone reproducer.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``campaigns`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from campaigns.fuzzing import conf, jwt, mqtt, nats, scram, ws
from campaigns.fuzzing.engine import Report, Target, campaign

TARGETS: dict[str, Target] = {t.name: t for t in (nats.TARGET, mqtt.TARGET, ws.TARGET,
                                                  conf.TARGET, jwt.TARGET, scram.TARGET)}
DEFAULT_SEED = 20240611
DEFAULT_COUNT = 1_000_000
#: A runaway allocation becomes a MemoryError (a crash with a traceback), not a dead box.
MEMORY_CAP = 4 << 30
#: Rejection kinds listed in the table cell; more are counted and listed above it.
KINDS_IN_CELL = 8


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT,
                        help="inputs per target (default %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--budget", type=float, default=None,
                        help="stop a target after this many seconds (default: no limit)")
    parser.add_argument("--time-limit", type=float, default=1.0,
                        help="an input slower than this is a hang (default %(default)s s)")
    parser.add_argument("--hard-limit", type=float, default=10.0,
                        help="interrupt an input after this many seconds")
    return parser.parse_args(argv)


def print_progress(report: Report) -> None:
    print(f"  {report.target}: {report.inputs} inputs, {report.rate:,.0f}/s, "
          f"{report.crashes} crashes, {report.hangs} hangs", file=sys.stderr, flush=True)


def print_details(report: Report) -> None:
    """The rejections seen and every distinct failure with its reproducer."""
    print(f"\n## {report.target}: {report.inputs} inputs in {report.seconds:.1f} s "
          f"({report.rate:,.0f}/s), slowest input {report.slowest * 1000:.1f} ms")
    print(f"rejection kinds ({len(report.kinds)}):")
    for kind, n in sorted(report.kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {n:>9}  {kind}")
    for problem in report.limit_problems:
        print(f"LIMIT NOT RESPECTED: {problem}")
    target = TARGETS[report.target]
    if report.anomalies:
        print(f"anomalies ({len(report.anomalies)}; not failures):")
    for anomaly, n in sorted(report.anomalies.items(), key=lambda kv: -kv[1]):
        print(f"\n### ANOMALY x{n}: {anomaly}\nexample:\n```python")
        print(target.reproducer(report.anomaly_cases[anomaly]))
        print("```")
    for failure in report.failures.values():
        print(f"\n### {failure.kind.upper()} x{failure.count}: {failure.signature}")
        print(failure.detail)
        print("reproducer:\n```python")
        print(target.reproducer(failure.case))
        print("```")


def kinds_cell(report: Report) -> str:
    names = sorted(report.kinds)
    if len(names) <= KINDS_IN_CELL:
        return f"{len(names)}: " + "; ".join(names) if names else "0"
    return f"{len(names)} (listed above)"


def print_table(reports: list[Report], argv: list[str]) -> None:
    print(f"\ncommand: python tests/campaigns/fuzz.py {' '.join(argv)}".rstrip())
    print("\n| target | inputs | inputs/s | crashes | hangs | anomalies | distinct rejections |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in reports:
        print(f"| {r.target} | {r.inputs:,} | {r.rate:,.0f} | {r.crashes} | {r.hangs} | "
              f"{sum(r.anomalies.values())} | {kinds_cell(r).replace('|', '/')} |")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    for stream in (sys.stdout, sys.stderr):  # inputs hold lone surrogates and control bytes
        stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft > MEMORY_CAP:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, hard))
    names = list(TARGETS) if args.target == "all" else [args.target]
    reports = []
    for name in names:
        print(f"fuzzing {name}: {args.count} inputs, seed {args.seed}", file=sys.stderr)
        report = campaign(TARGETS[name], args.count, args.seed, budget=args.budget,
                          soft_limit=args.time_limit, hard_limit=args.hard_limit,
                          progress=print_progress)
        print_details(report)
        reports.append(report)
    print_table(reports, argv)
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

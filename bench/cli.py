"""Command line for ``jetport bench``: pick scenarios and targets, run, print the table."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import servers
from .model import JETSTREAM, OWN, REGISTRY, Context, Params, Result
from .plot import PlotError, check, plot
from .report import fmt_value, host_info, markdown, table, write_json
from .runner import Job, run_job
from .servers import LaunchError, TargetSpec

DEFAULT_URL = "nats://127.0.0.1:4222"

# Counts sized so each pubsub row takes one to a few seconds at nats-server speed on two
# cores (about 20 s per target in all), and stays inside the time limit for a server ten
# times slower.
PRESETS: dict[str, list[tuple[str, Params]]] = {
    "readme": [
        ("pubsub", {"size": 16, "pubs": 1, "subs": 1, "count": 3_000_000}),
        ("pubsub", {"size": 16, "pubs": 1, "subs": 4, "count": 1_000_000}),
        ("pubsub", {"size": 1024, "pubs": 1, "subs": 1, "count": 1_000_000}),
        ("reqrep", {"rate": 1000, "count": 5_000}),
        ("conns", {"conns": 10_000}),
        ("js-pub", {"size": 128, "window": 1000, "count": 200_000}),
        ("js-sync", {"size": 128, "count": 2_000}),
        ("js-fetch", {"size": 128, "count": 200_000}),
    ],
    "js": [
        ("js-pub", {"size": 128, "window": 1000, "count": 200_000}),
        ("js-sync", {"size": 128, "count": 2_000}),
        ("js-fetch", {"size": 128, "count": 200_000}),
        ("js-restart", {"size": 128, "count": 1_000_000}),
    ],
    "auth": [
        ("auth", {"size": 16, "pubs": 1, "subs": 1, "count": 2_000_000, "rules": 100}),
    ],
    # QoS 0/1 x 1->1/1->4 x 16 B/1 KiB, counts sized for a few seconds each on Mosquitto.
    "mqtt": [
        ("mqtt-qos0", {"size": 16, "subs": 1, "count": 1_000_000}),
        ("mqtt-qos0", {"size": 16, "subs": 4, "count": 500_000}),
        ("mqtt-qos0", {"size": 1024, "subs": 1, "count": 500_000}),
        ("mqtt-qos0", {"size": 1024, "subs": 4, "count": 200_000}),
        ("mqtt-qos1", {"size": 16, "subs": 1, "count": 300_000}),
        ("mqtt-qos1", {"size": 16, "subs": 4, "count": 100_000}),
        ("mqtt-qos1", {"size": 1024, "subs": 1, "count": 200_000}),
        ("mqtt-qos1", {"size": 1024, "subs": 4, "count": 100_000}),
        ("mqtt-clients", {"conns": 10_000}),
    ],
    "ws": [
        ("ws", {"size": 128, "pubs": 1, "subs": 1, "count": 500_000}),
    ],
    "http": [
        ("http", {"size": 128, "count": 20_000, "conns": 16, "batch": 1000}),
        ("sse", {"subs": 1000, "rate": 10, "count": 100}),
    ],
    "leaf": [
        ("leaf-pubsub", {"size": 16, "count": 1_000_000, "nodes": 3}),
        ("leaf-pubsub", {"size": 1024, "count": 300_000, "nodes": 3}),
        ("leaf-mqtt", {"size": 128, "count": 20_000, "nodes": 3}),
    ],
    # Many-subject traffic: 1,000 subjects, mixed sizes, some headers; three subscriber shapes.
    "real": [
        ("subj-wild", {"count": 1_000_000}),
        ("subj-exact", {"count": 1_000_000}),
        ("subj-queue", {"count": 1_000_000, "subs": 4}),
    ],
    # Request/reply round trips, idle and beside pub/sub at half of each server's own peak.
    "latency": [
        ("reqrep", {"rate": 1000, "count": 5_000}),
        ("reqrep-load", {"rate": 1000, "count": 5_000, "size": 128}),
    ],
    "quick": [
        ("pubsub", {"size": 16, "pubs": 1, "subs": 1, "count": 20_000}),
        ("pubsub", {"size": 16, "pubs": 2, "subs": 2, "count": 20_000}),
        ("reqrep", {"rate": 2000, "count": 200}),
        ("conns", {"conns": 100, "settle": 0.1}),
    ],
}
OVERRIDES = ("pubs", "subs", "size", "count", "rate", "conns", "window", "batch", "nodes")


def _scaled(text: str, unit: int, minimum: int) -> int:
    """Parse 16, 1k, 2M, 1KiB, 16B, 1000/s (``unit``: 1000 for counts, 1024 for sizes)."""
    s = text.strip().removesuffix("/s").removesuffix("B").removesuffix("b")
    s = s.removesuffix("i")
    mult = {"k": unit, "K": unit, "m": unit**2, "M": unit**2}.get(s[-1:], 1)
    try:
        value = int(float(s[:-1] if mult > 1 else s) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}: {text!r}")
    return value


def count_arg(text: str) -> int:
    return _scaled(text, 1000, 1)


def size_arg(text: str) -> int:
    return _scaled(text, 1024, 0)


def seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


class _AddTarget(argparse.Action):
    """Collect targets in command-line order; the first one is the ratio's numerator."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        specs: list[TargetSpec] = list(getattr(namespace, "targets", None) or [])
        if self.const == "url":
            specs.append(TargetSpec("url", url=values))
        elif self.const == "compare":
            specs += [TargetSpec("jetport"), TargetSpec("nats-server")]
        else:
            specs.append(TargetSpec(self.const))
        namespace.targets = specs


def _epilog() -> str:
    lines = ["scenarios:"]
    lines += [f"  {s.name:10} {s.help}" for s in REGISTRY.values()]
    lines += ["", "presets:"]
    for name, jobs in PRESETS.items():
        labels = ", ".join(Job(s, {**REGISTRY[s].defaults, **p}).label for s, p in jobs)
        lines.append(f"  {name:10} {labels}")
    lines += [
        "",
        "With no scenario the 'readme' preset runs. With no target, " + DEFAULT_URL + " is used.",
        "cpu% cli/srv: CPU used by the bench client and by the server during the measurement;",
        "mqtt-qos*: the pair of the run on the target's MQTT door, then that of Mosquitto's.",
        "js-* scenarios on servers the bench starts get a fresh server each, with JetStream on",
        "a scratch store directory; against --url the server must have JetStream enabled.",
        "leaf-pubsub starts a nats-server cluster and two leaves of the target's kind per run;",
        "its srv CPU is both leaves together (the cluster's is in --json).",
        "http and sse measure Jetport's HTTP door, which nats-server lacks: they start a hub of",
        "their own and leave the nats-server column empty.",
        "reqrep-load measures each server's own pub/sub peak first (--size, 1 -> 1), then",
        "request/reply beside a background load at half of that peak, so each server carries",
        "the same share of what it can do, not the same rate.",
        "",
        "examples:",
        "  jetport bench --compare",
        "  jetport bench --nats-server pubsub --size 1KiB --subs 4 --count 200k",
        "  jetport bench --compare --preset js",
        "  jetport bench --compare js-pub --window 100 --count 50k",
        "  jetport bench --compare leaf-pubsub --nodes 1 --count 100k",
        "  jetport bench --compare subj-queue --subs 8 --count 500k",
        "  jetport bench --compare reqrep-load --rate 1000 --count 3000",
        "  jetport bench --jetport sse --subs 1000 --rate 10 --count 100",
        "  jetport bench --jetport mqtt-qos1 --subs 4 --size 1KiB --count 100k",
        "  jetport bench --url nats://127.0.0.1:4222 --pid 1234 conns --conns 10000",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jetport bench",
        description="Load generator speaking the raw NATS client protocol. Works against any\n"
        "NATS server; prints one row per scenario and one column group per target.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_epilog(),
    )
    names = ", ".join(REGISTRY)
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"one or more of: {names}")
    p.add_argument("--scenario", action="append", default=[], metavar="NAME",
                   help="same as a positional SCENARIO (repeatable)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="run a predefined set of scenarios")
    t = p.add_argument_group("targets (repeatable; the first is the ratio numerator)")
    t.add_argument("--url", action=_AddTarget, const="url", metavar="URL",
                   help="an already running server, e.g. nats://127.0.0.1:4222")
    t.add_argument("--pid", type=int, action="append", default=[], metavar="PID",
                   help="server pid for the n-th --url (RSS and CPU are read from /proc)")
    t.add_argument("--nats-server", action=_AddTarget, const="nats-server", nargs=0,
                   help="start nats-server on a free port for the run")
    t.add_argument("--jetport", action=_AddTarget, const="jetport", nargs=0,
                   help="start 'jetport serve -a 127.0.0.1 -p PORT' for the run")
    t.add_argument("--compare", action=_AddTarget, const="compare", nargs=0,
                   help="same as --jetport --nats-server")
    s = p.add_argument_group("scenario parameters (override scenario and preset values)")
    s.add_argument("--pubs", type=count_arg, metavar="N", help="pubsub: publisher connections")
    s.add_argument("--subs", type=count_arg, metavar="N",
                   help="pubsub, mqtt-qos*: subscriber connections; subj-queue: queue group "
                   "members; sse: SSE subscribers")
    s.add_argument("--size", type=size_arg, metavar="BYTES", help="payload size, e.g. 16, 1KiB")
    s.add_argument("--count", type=count_arg, metavar="N",
                   help="messages (pubsub, js-*, sse) or requests (reqrep, reqrep-load), "
                   "e.g. 500k, 2M")
    s.add_argument("--rate", type=count_arg, metavar="N",
                   help="reqrep, reqrep-load: requests per second; sse: messages per second")
    s.add_argument("--conns", type=count_arg, metavar="N", help="conns: idle connections")
    s.add_argument("--window", type=count_arg, metavar="N",
                   help="js-pub, js-fetch, js-restart: PubAcks outstanding while publishing; "
                   "mqtt-qos1, leaf-mqtt: PUBACKs outstanding (default 1000)")
    s.add_argument("--batch", type=count_arg, metavar="N",
                   help="js-fetch: messages per pull request (default 1000)")
    s.add_argument("--nodes", type=count_arg, metavar="N",
                   help="leaf-pubsub: nats-server cluster nodes between the leaves (default 3)")
    o = p.add_argument_group("run")
    o.add_argument("--timeout", type=seconds_arg, default=30.0, metavar="SEC",
                   help="time limit per measurement in seconds; partial numbers are reported "
                   "when it is hit (default: 30)")
    o.add_argument("--json", metavar="FILE", help="also write raw results as JSON")
    o.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    o.add_argument("--plot", metavar="FILE",
                   help="also draw the ratios of two targets as a bar chart (.png or .svg; "
                        "needs the optional extra: pip install 'jetport[plot]')")
    o.add_argument("--in-process", action="store_true",
                   help="run the client in this process instead of a fresh child per scenario")
    return p


def build_jobs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Job]:
    names = list(args.scenarios) + list(args.scenario)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r} (choose from {', '.join(REGISTRY)})")
    if names and args.preset:
        parser.error("give scenarios or --preset, not both")
    chosen = [(n, {}) for n in names] if names else PRESETS[args.preset or "readme"]
    jobs = []
    for name, preset_params in chosen:
        scenario = REGISTRY[name]
        params = {**scenario.defaults, **preset_params}
        for key in OVERRIDES:
            value = getattr(args, key)
            if value is not None and key in params:
                params[key] = value
        jobs.append(Job(name, params))
    return jobs


def build_targets(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[TargetSpec]:
    specs: list[TargetSpec] = list(getattr(args, "targets", None) or [])
    if not specs:
        specs = [TargetSpec("url", url=DEFAULT_URL)]
    urls = [i for i, s in enumerate(specs) if s.kind == "url"]
    if len(args.pid) > len(urls):
        parser.error("more --pid than --url targets")
    for i, pid in zip(urls, args.pid, strict=False):
        specs[i] = TargetSpec("url", url=specs[i].url, pid=pid)
    seen: dict[str, int] = {}
    named = []
    for spec in specs:
        seen[spec.label] = seen.get(spec.label, 0) + 1
        suffix = f"#{seen[spec.label]}" if seen[spec.label] > 1 else ""
        named.append(TargetSpec(spec.kind, spec.url, spec.pid, spec.label + suffix))
    return named


def _summary(outcome_metrics: dict[str, float | None], scenario: str) -> str:
    cols = REGISTRY[scenario].columns
    return " ".join(f"{c.label}={fmt_value(c.kind, outcome_metrics.get(c.key))}" for c in cols)


class _TargetRun:
    """Runs jobs against one target: the shared server is started on first use, JetStream
    scenarios get a fresh server each when the bench launches servers."""

    def __init__(self, spec: TargetSpec, args: argparse.Namespace,
                 about: list[dict[str, Any]], stack: contextlib.ExitStack) -> None:
        self.spec, self.args, self.about, self.stack = spec, args, about, stack
        self.shared: servers.Target | None = None
        self.shared_error: str | None = None
        self.described = False

    def _describe(self, tgt: servers.Target) -> None:
        if not self.described:
            self.about.append(tgt.describe())
            self.described = True

    def _shared(self) -> servers.Target:
        if self.shared is None and self.shared_error is None:
            try:
                self.shared = self.stack.enter_context(servers.target(self.spec))
            except LaunchError as exc:
                self.shared_error = str(exc)
                print(f"   {exc}", file=sys.stderr, flush=True)
                if not self.described:
                    self.about.append({"name": self.spec.label, "url": self.spec.url,
                                       "pid": self.spec.pid, "error": str(exc)})
                    self.described = True
            else:
                self._describe(self.shared)
                tgt = self.shared
                pid = f", pid {tgt.pid}" if tgt.pid else ""
                print(f"   server {tgt.url} (version {tgt.info.get('version', '?')}{pid})",
                      file=sys.stderr, flush=True)
        if self.shared is None:
            raise LaunchError(self.shared_error or "target unavailable")
        return self.shared

    def run(self, job: Job) -> Result:
        spec, args = self.spec, self.args
        result = Result(job.label, job.scenario, spec.label, dict(job.params))
        scenario = REGISTRY[job.scenario]
        log = sys.stderr
        started = time.perf_counter()
        try:
            if scenario.server == OWN:
                if spec.kind not in servers.LAUNCHABLE:
                    result.error = ("needs a server the bench starts itself (--jetport, "
                                    "--nats-server or --compare)")
                    print(f"   {job.label} ... skipped: {result.error}", file=log, flush=True)
                    return result
                print(f"   {job.label} ...", end="", file=log, flush=True)
                self._execute(job, result, Context("", None, args.timeout, launch=spec.kind))
            elif scenario.server == JETSTREAM and spec.kind in servers.LAUNCHABLE:
                with servers.target(spec, jetstream=True) as tgt:
                    self._describe(tgt)
                    result.details["server"] = tgt.describe()
                    print(f"   {job.label} (JetStream server pid {tgt.pid}) ...", end="",
                          file=log, flush=True)
                    self._execute(job, result, Context(tgt.url, tgt.pid, args.timeout), tgt)
            else:
                tgt = self._shared()
                dead = tgt.died()
                if dead:
                    result.error = dead
                    return result
                print(f"   {job.label} ...", end="", file=log, flush=True)
                self._execute(job, result, Context(tgt.url, tgt.pid, args.timeout), tgt)
        except LaunchError as exc:
            result.error = f"target unavailable: {str(exc).splitlines()[0]}"
            print(f"   {job.label} ... {result.error}", file=log, flush=True)
            return result
        took = time.perf_counter() - started
        status = " ERROR" if result.error else (" PARTIAL" if result.partial else "")
        print(f" {_summary(result.metrics, job.scenario)} [{took:.1f}s]{status}",
              file=log, flush=True)
        return result

    def _execute(self, job: Job, result: Result, ctx: Context,
                 tgt: servers.Target | None = None) -> None:
        outcome = run_job(job, ctx, isolate=not self.args.in_process)
        result.metrics = outcome.metrics
        result.details = {**result.details, **outcome.details}
        result.partial, result.error = outcome.partial, outcome.error
        dead = tgt.died() if tgt is not None else None
        if dead:
            result.error = (result.error + "; " if result.error else "") + dead


def _run_target(spec: TargetSpec, jobs: Sequence[Job], args: argparse.Namespace,
                about: list[dict[str, Any]]) -> list[Result]:
    """Run every job against one target; ``about`` collects what is known of the target."""
    where = f": {spec.url}" if spec.url and spec.url != spec.label else ""
    print(f"== {spec.label}{where}", file=sys.stderr, flush=True)
    with contextlib.ExitStack() as stack:
        runner = _TargetRun(spec, args, about, stack)
        return [runner.run(job) for job in jobs]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_intermixed_args(list(argv) if argv is not None else None)
    jobs = build_jobs(args, parser)
    specs = build_targets(args, parser)
    if args.plot:
        try:
            check(args.plot)
        except PlotError as exc:
            parser.error(str(exc))
        if len(specs) != 2:
            parser.error("--plot draws the ratios of two targets (e.g. --compare)")
    started = host_info()
    results: list[Result] = []
    about: list[dict[str, Any]] = []
    for spec in specs:
        results += _run_target(spec, jobs, args, about)
    rows = list(dict.fromkeys((job.label, job.scenario) for job in jobs))
    labels = [s.label for s in specs]
    print(table(rows, labels, results), flush=True)
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows, labels, results))
    if args.plot:
        try:
            plot(args.plot, rows, labels, results)
        except PlotError as exc:
            print(f"jetport bench: {exc}", file=sys.stderr)
            return 2
    if args.json:
        options = {"timeout": args.timeout, "isolated": not args.in_process,
                   "jobs": [{"scenario": j.scenario, "params": j.params} for j in jobs]}
        write_json(args.json, started, about, results, options)
    return 1 if any(r.error for r in results) else 0

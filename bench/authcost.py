"""What authentication and permission checks cost: pub/sub with and without them.

The scenario starts the target open, and with a config whose one user holds ``rules``
publish and subscribe allow rules, the matching one last.  The same pub/sub burst runs
against each, twice in turn, and the best run of each counts (single runs on a shared
machine vary more than the cost being measured); the cost is the drop in msgs/s.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from . import servers
from .common import size_label
from .model import OWN, Column, Context, Outcome, Params, Scenario
from .pubsub import pubsub
from .servers import LaunchError

USER, PASSWORD = "bench", "bench"
ROUNDS = 3


def auth_config(rules: int) -> str:
    """A users list with one user whose last allow rule is the one that matches."""
    allow = [f'"other.{i}.>"' for i in range(max(rules - 1, 0))] + ['"bench.>"']
    rules_text = "{ allow: [" + ", ".join(allow) + "] }"
    perms = f"publish: {rules_text}, subscribe: {rules_text}"
    return f"authorization {{ users: [ {{user: {USER}, password: {PASSWORD}, " \
        f"permissions: {{ {perms} }} }} ] }}\n"


async def _run_on(kind: str, work: Path, n: int, extra: list[str], ctx: Context, p: Params,
                  credentials: str) -> Outcome:
    port = servers.free_port()
    proc, cmd, log = servers.spawn(kind, port, work, log_name=f"server-{n}.log", extra=extra)
    try:
        try:
            servers.wait_ready("127.0.0.1", port, proc, ctx.timeout)
        except LaunchError as exc:
            raise LaunchError(f"{exc}\n  command: {' '.join(cmd)}\n"
                              f"{servers.log_tail(log)}") from exc
        url = f"nats://{credentials}127.0.0.1:{port}"
        return await pubsub(Context(url, proc.pid, ctx.timeout), p)
    finally:
        servers.stop(proc)


async def auth_cost(ctx: Context, p: Params) -> Outcome:
    if ctx.launch is None:
        return Outcome(metrics={}, error="auth needs a server the bench starts itself "
                                         "(--compare or --server)")
    with tempfile.TemporaryDirectory(prefix="jetport-bench-auth-") as tmp:
        work = Path(tmp)
        conf = work / "auth.conf"
        conf.write_text(auth_config(int(p["rules"])))
        runs: dict[str, list[Outcome]] = {"open": [], "auth": []}
        try:
            for n in range(ROUNDS):
                runs["open"].append(await _run_on(ctx.launch, work, 2 * n, [], ctx, p, ""))
                runs["auth"].append(await _run_on(
                    ctx.launch, work, 2 * n + 1, ["-c", str(conf)], ctx, p,
                    f"{USER}:{PASSWORD}@"))
        except LaunchError as exc:
            return Outcome(metrics={}, error=str(exc))
    plain, guarded = (max(runs[k], key=lambda o: o.metrics.get("msgs_per_s") or 0.0)
                      for k in ("open", "auth"))
    base = plain.metrics.get("msgs_per_s") or 0.0
    auth = guarded.metrics.get("msgs_per_s") or 0.0
    cost = 100.0 * (1 - auth / base) if base else None
    return Outcome(
        metrics={"open_msgs_per_s": base, "auth_msgs_per_s": auth, "cost_pct": cost},
        details={"open": plain.details, "auth": guarded.details},
        partial=plain.partial or guarded.partial,
        error=plain.error or guarded.error,
    )


SCENARIO = Scenario(
    name="auth",
    run=auth_cost,
    columns=(Column("open_msgs_per_s", "open msgs/s", "rate"),
             Column("auth_msgs_per_s", "auth msgs/s", "rate"),
             Column("cost_pct", "cost %", "float", ratio=False)),
    defaults={"pubs": 1, "subs": 1, "size": 16, "count": 1_000_000, "warmup": None,
              "rules": 100},
    label=lambda p: f"auth {p['rules']} rules {size_label(p['size'])} {p['pubs']}->{p['subs']}",
    help="pub/sub without auth and as a user with N allow rules; the throughput cost",
    server=OWN,
    phases=2 * ROUNDS,
)

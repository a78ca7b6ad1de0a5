"""Run one scenario against one target, by default in a fresh child process.

A fresh process per scenario keeps runs independent (no heap or socket leftovers from the
previous scenario) and confines the raised open-file limit to the client, so servers this
run launches keep their own limits.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import traceback
from dataclasses import dataclass

import uvloop

from . import scenarios as _scenarios  # noqa: F401  (registers the built-in scenarios)
from .model import REGISTRY, Context, Outcome, Params

# Allowance on top of the measured phase's time limit for connecting and tearing down.
SETUP_ALLOWANCE = 60.0


@dataclass(frozen=True)
class Job:
    """One table row: a scenario with concrete parameters."""

    scenario: str
    params: Params

    @property
    def label(self) -> str:
        return REGISTRY[self.scenario].label(self.params)


def run_here(job: Job, ctx: Context) -> Outcome:
    """Run the scenario on a uvloop event loop in this process."""
    scenario = REGISTRY[job.scenario]
    try:
        return uvloop.run(scenario.run(ctx, job.params))
    except Exception as exc:  # noqa: BLE001 - a failing scenario becomes a reported error, not a crash
        detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return Outcome(metrics={}, error=detail or type(exc).__name__)


def _child(job: Job, ctx: Context, conn: multiprocessing.connection.Connection) -> None:
    conn.send(run_here(job, ctx))
    conn.close()


def run_isolated(job: Job, ctx: Context) -> Outcome:
    """Run the scenario in a spawned child and collect its outcome through a pipe."""
    mp = multiprocessing.get_context("spawn")
    recv, send = mp.Pipe(duplex=False)
    proc = mp.Process(target=_child, args=(job, ctx, send), name=f"bench-{job.scenario}")
    proc.start()
    send.close()
    budget = ctx.timeout * REGISTRY[job.scenario].phases + SETUP_ALLOWANCE
    try:
        if recv.poll(budget):
            outcome: Outcome = recv.recv()
            return outcome
        return Outcome(metrics={}, error="client worker did not finish in time")
    except EOFError:
        return Outcome(metrics={}, error=f"client worker died (exit {proc.exitcode})")
    finally:
        recv.close()
        proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join()


def run_job(job: Job, ctx: Context, isolate: bool = True) -> Outcome:
    return run_isolated(job, ctx) if isolate else run_here(job, ctx)

"""Background work: the one way the hub starts a task.

asyncio keeps only a weak reference to a task, so one nobody holds can vanish
mid-flight, and an exception nobody retrieves is reported late, far from its cause, or
not at all.  :func:`spawn` keeps every task referenced until it ends and logs a failure
with what the task was doing for whom (``"stream ORDERS: expiry"``,
``"cid:7 - authentication"``), so no error is silent.  A bare ``create_task`` or
``ensure_future`` elsewhere is refused by ruff (``TID251``) and by a unit test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from jetport.core.log import log

T = TypeVar("T")

_running: set[asyncio.Task[Any]] = set()


def spawn(work: Coroutine[Any, Any, T], what: str, *, report: bool = True) -> asyncio.Task[T]:
    """Run ``work`` in the background, referenced until done.

    ``what`` names the task in its error log line.  With ``report`` False, the caller
    awaits the task and handles its exception itself (it is not logged twice).
    """
    task = asyncio.get_running_loop().create_task(work, name=what)
    _running.add(task)
    task.add_done_callback(_reported if report else _running.discard)
    return task


def _reported(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("%s failed: %s", task.get_name(), exc or type(exc).__name__,
                  exc_info=exc)


def running() -> int:
    """How many spawned tasks have not finished (monitoring, tests)."""
    return len(_running)

"""Priority-group rules for pull requests (ADR-42): what a request may ask of a
consumer's priority policy, and where a request waits on a ``prioritized`` consumer.

A ``prioritized`` consumer serves its waiting requests by their ``priority`` (0 first,
then 1, up to 9), in arrival order within a priority.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from jetport.core.jetstream.models import BadPullRequest, PullRequest

if TYPE_CHECKING:
    from jetport.core.jetstream.pull import WaitingRequest

MAX_PRIORITY = 9
#: Where a request that is not a JSON object (an empty body, a bare batch size) waits on
#: a prioritized consumer: it names no priority, so nats-server queues it after all
#: that do.
UNRANKED = MAX_PRIORITY + 1


def check_priority(req: PullRequest, formal: bool, groups: list[str], policy: str) -> None:
    """Raise nats-server's ``400 Bad Request`` reason, in its order, for a request the
    consumer's priority ``policy`` and ``groups`` refuse.

    Only a ``formal`` request (a JSON object) is checked: nats-server serves one that is
    not (an empty body, a bare batch size) on any consumer, without a group.
    """
    if not formal:
        return
    if (req.min_pending or req.min_ack_pending) and policy != "overflow":
        raise BadPullRequest("Not a Overflow Priority consumer")
    if req.id and policy != "pinned_client":
        raise BadPullRequest("Not a Pinned Client Priority consumer")
    if not 0 <= req.priority <= MAX_PRIORITY:
        raise BadPullRequest(f"Priority must be between 0 and {MAX_PRIORITY}")
    if policy != "none":
        if not req.group:
            raise BadPullRequest("Priority Group missing")
        if req.group not in groups:
            raise BadPullRequest("Invalid Priority Group")


def enqueue_ranked(waiting: deque[WaitingRequest], req: WaitingRequest) -> None:
    """Put ``req`` behind every waiting request of its priority or a lower number."""
    for i, other in enumerate(waiting):
        if other.priority > req.priority:
            waiting.insert(i, req)
            return
    waiting.append(req)

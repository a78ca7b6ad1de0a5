"""Doors: the protocol adapters the server assembly loads by name.

A door is found through the ``jetport.doors`` entry point group, so the core never
imports one.  Each door talks to the hub only through the core's public objects
(:class:`jetport.core.hub.Hub`, :class:`jetport.core.client.Client`, accounts and routers).
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from jetport.core.config import Options
    from jetport.core.hub import Hub

GROUP = "jetport.doors"


class Door(Protocol):
    """What the server assembly needs from a door."""

    name: str
    #: Start order; lower first.  The client door opens before monitoring, so health
    #: checks only pass once clients can connect.
    order: int

    def __init__(self, hub: Hub) -> None: ...

    @classmethod
    def wanted(cls, options: Options) -> bool:
        """Whether the options ask for this door."""
        ...

    async def start(self) -> None: ...

    async def lame_duck(self, duration: float, grace: float) -> None: ...

    async def stop(self) -> None: ...


def door_classes() -> list[type[Door]]:
    """Every installed door, in start order."""
    classes = [ep.load() for ep in entry_points(group=GROUP)]
    return sorted(classes, key=lambda cls: (cls.order, cls.name))

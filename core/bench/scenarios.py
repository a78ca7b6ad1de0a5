"""The built-in scenarios, registered in the order the CLI lists them.

A new scenario (JetStream publish, pull fetch, WebSocket, MQTT, HTTP, ...) is a module with an
``async def run(ctx, params) -> Outcome`` wrapped in a ``Scenario``; add it to ``BUILTIN`` and
it appears in the CLI, presets, table and JSON.
"""

from . import conns, pubsub, reqrep
from .model import register

BUILTIN = (pubsub.SCENARIO, reqrep.SCENARIO, conns.SCENARIO)

for _scenario in BUILTIN:
    register(_scenario)

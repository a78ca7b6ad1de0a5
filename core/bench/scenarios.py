"""Built-in scenarios. Importing this module registers them.

A new scenario (JetStream publish, pull fetch, WebSocket, MQTT, HTTP, ...) is a module with an
``async def run(ctx, params) -> Outcome`` registered as a ``Scenario``; add it to the import
below and it appears in the CLI, presets, table and JSON.
"""

from . import conns, pubsub, reqrep

BUILTIN = (pubsub.pubsub, reqrep.reqrep, conns.conns)

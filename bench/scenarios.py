"""The built-in scenarios, registered in the order the CLI lists them.

A new scenario (WebSocket, MQTT, HTTP, ...) is a module with an ``async def run(ctx, params)
-> Outcome`` wrapped in a ``Scenario``; add it to ``BUILTIN`` and it appears in the CLI,
presets, table and JSON. ``Scenario.server`` says whether it shares the target's server, needs
a fresh JetStream-enabled one, or starts servers itself.
"""

from . import (
    authcost,
    conns,
    http,
    jsfetch,
    jspub,
    jsrestart,
    jssync,
    leafmqtt,
    leafpubsub,
    mqtt,
    mqttflow,
    pubsub,
    reqload,
    reqrep,
    sse,
    subjects,
    ws,
)
from .model import register

BUILTIN = (
    pubsub.SCENARIO,
    subjects.WILD,
    subjects.EXACT,
    subjects.QUEUE_GROUP,
    reqrep.SCENARIO,
    reqload.SCENARIO,
    conns.SCENARIO,
    jspub.SCENARIO,
    jssync.SCENARIO,
    jsfetch.SCENARIO,
    jsrestart.SCENARIO,
    authcost.SCENARIO,
    ws.SCENARIO,
    mqttflow.QOS0,
    mqttflow.QOS1,
    mqtt.CLIENTS,
    http.SCENARIO,
    sse.SCENARIO,
    leafpubsub.SCENARIO,
    leafmqtt.SCENARIO,
)

for _scenario in BUILTIN:
    register(_scenario)

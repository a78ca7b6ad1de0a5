"""MQTT 5 request/response over NATS reply subjects.

An MQTT 5 request names a response topic and may carry correlation data.  MQTT 5
subscribers get both exactly as sent (MQTT 5 3.3.2.3.5): they travel in the headers
``Mqtt-Response-Topic`` and ``Mqtt-Correlation-Data`` (base64), and an MQTT responder
publishes its answer to the requester's own topic, with no relay in between.

NATS responders answer the reply subject and usually drop the request's headers, so
the correlation data would be lost on the way back.  Each request therefore also gets
a reply subject of its own (``$MQTT.rr.<relay>.<n>``); whatever is published there
within the response window is forwarded to the response topic's subject with the
request's correlation data attached (NATS, HTTP or any other responder that answers
the reply subject).  MQTT subscribers never see that reply subject as a response
topic: a message that carries it without the header (a NATS service that passed the
request on) shows the requester's topic again.
"""

from __future__ import annotations

import base64
import secrets
import time
from typing import TYPE_CHECKING

from jetport.core.headers import add as add_headers
from jetport.core.internal import InternalClient

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.hub import Hub

#: How long a request's reply subject keeps forwarding (nats-server's response TTL).
RESPONSE_WINDOW = 120.0
CORRELATION = b"Mqtt-Correlation-Data"
#: An MQTT 5 request's response topic, as its publisher wrote it.
RESPONSE_TOPIC = b"Mqtt-Response-Topic"
#: Reply subjects of MQTT 5 requests.
RELAY_PREFIX = b"$MQTT.rr."


class ResponseRelay(InternalClient):
    """One account's reply subjects for MQTT 5 requests."""

    kind = "Internal"

    def __init__(self, hub: Hub, account: Account) -> None:
        super().__init__(hub, account, "$MQTT.rr")
        self.prefix = RELAY_PREFIX + b"%s." % secrets.token_hex(4).encode()
        self._n = 0
        #: reply subject -> (response subject, correlation data, deadline, response topic)
        self._open: dict[bytes, tuple[bytes, bytes | None, float, str]] = {}
        self.listen(self.prefix + b"*", self._on_response)

    def reply_for(self, response_subject: bytes, correlation: bytes | None,
                  topic: str = "") -> bytes:
        """A reply subject for one request whose answers go to ``response_subject``
        (the subject of response topic ``topic``)."""
        self._n += 1
        reply = self.prefix + b"%d" % self._n
        now = time.monotonic()
        self._open[reply] = (response_subject, correlation, now + RESPONSE_WINDOW, topic)
        if self._n % 1024 == 0:
            self._open = {k: v for k, v in self._open.items() if v[2] > now}
        return reply

    def request_of(self, reply: bytes) -> tuple[str, bytes | None] | None:
        """The response topic and correlation data of the request ``reply`` belongs
        to, while its window is open."""
        entry = self._open.get(reply)
        if entry is None or time.monotonic() > entry[2]:
            return None
        return entry[3], entry[1]

    def _on_response(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                     payload: bytes) -> None:
        entry = self._open.get(subject)
        if entry is None:
            return
        target, correlation, deadline, _ = entry
        if time.monotonic() > deadline:
            del self._open[subject]
            return
        if correlation is not None and (hdr is None or CORRELATION not in hdr):
            hdr = add_headers(hdr, [(CORRELATION, base64.b64encode(correlation))])
        self.send(target, reply, hdr, payload)

"""What hubs sharing one JetStream domain for MQTT (``mqtt { js_domain }``) tell each
other, so that their MQTT doors behave as one broker.

Sessions, queues and retained messages are already shared: they are stored in the
domain's streams (:mod:`.store`).  Two things are not stored state and travel as
messages through the leaf node links, each hub listening in every account with MQTT:

- ``$MQTT.takeover.<session token>``: a hub opened the session of this client id; any
  other hub holding it (connected or offline) lets it go, so a client id is connected
  once in the whole system and its subscriptions queue messages in one place.  The hub
  where the client was connected closes that connection as on a local takeover.
- ``$MQTT.rmsgs.<subject>``: the retained-message stream's own subjects.  Every write to
  the stream reaches the listening hubs too, which update the retained messages they
  hand to new subscriptions (an empty payload clears a topic).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from jetport.core.headers import parse as parse_headers
from jetport.core.internal import InternalClient
from jetport.core.log import log

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.hub import Hub

TAKEOVER = b"$MQTT.takeover."
RETAINED = b"$MQTT.rmsgs."

#: ``(account, client id)`` of a session another hub opened.
OnTakeover = Callable[["Account", str], None]
#: ``(account, subject, headers, payload)`` of a retained message written anywhere.
OnRetained = Callable[["Account", str, dict[bytes, bytes], bytes], None]


class SharedMqtt:
    """One account's side of the conversation between hubs."""

    def __init__(self, hub: Hub, account: Account, on_takeover: OnTakeover,
                 on_retained: OnRetained) -> None:
        self.hub = hub
        self.account = account
        self.client = InternalClient(hub, account, "$MQTT")
        self._on_takeover, self._on_retained = on_takeover, on_retained
        self.client.listen(TAKEOVER + b"*", self._takeover)
        self.client.listen(RETAINED + b">", self._retained)

    def opened(self, token: str, client_id: str) -> None:
        """This hub has just opened the session of ``client_id``."""
        notice = json.dumps({"server": self.hub.server_id, "client_id": client_id})
        self.client.send(TAKEOVER + token.encode(), None, None, notice.encode())

    def _takeover(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                  payload: bytes) -> None:
        try:
            notice = json.loads(payload)
            server, client_id = notice["server"], notice["client_id"]
        except (ValueError, KeyError, TypeError):
            log.warning("MQTT: unreadable session notice on %s in account %s",
                        subject.decode(errors="replace"), self.account.name)
            return
        if server != self.hub.server_id and isinstance(client_id, str):
            self._on_takeover(self.account, client_id)

    def _retained(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                  payload: bytes) -> None:
        headers = parse_headers(hdr) if hdr else {}
        self._on_retained(self.account, subject[len(RETAINED):].decode(errors="replace"),
                          headers, payload)

    def close(self) -> None:
        self.client.release()

"""The ``$JS.API`` of an account without JetStream: refusals shaped as nats-server's."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from jetport.core.internal import InternalClient
from jetport.core.jetstream import errors as E
from jetport.core.jetstream.models import parse_consumer_request
from jetport.core.jetstream.responses import EMPTY_EXTRAS, PREFIX, RESPONSE_TYPES, T

if TYPE_CHECKING:
    from jetport.core.accounts import Account
    from jetport.core.hub import Hub


class NotEnabledApi:
    """The API of an account without JetStream: every request nats-server answers gets
    its response type with error 10039 (or 10010 for clustering-only requests).

    Pull requests and direct gets are not listened to, so they find no responders, as
    with nats-server; account, meta and server requests are listened to but not answered.
    """

    SUBJECTS = (b"$JS.API.INFO", b"$JS.API.STREAM.>", b"$JS.API.ACCOUNT.>", b"$JS.API.META.>",
                b"$JS.API.SERVER.>") + tuple(
        b"$JS.API.CONSUMER.%b.>" % op for op in (
            b"CREATE", b"DURABLE", b"INFO", b"DELETE", b"NAMES", b"LIST", b"PAUSE", b"UNPIN",
            b"LEADER"))

    def __init__(self, hub: Hub, account: Account) -> None:
        self.client = InternalClient(hub, account, "$JS")
        for subject in self.SUBJECTS:
            self.client.listen(subject, self._on_request)

    def _on_request(self, subject: bytes, reply: bytes | None, hdr: bytes | None,
                    payload: bytes) -> None:
        if not reply:
            return
        response = not_enabled_response(subject[len(PREFIX):].split(b"."), payload)
        if response is not None:
            self.client.send(reply, None, None,
                             json.dumps(response, separators=(",", ":")).encode())

    def close(self) -> None:
        self.client.release()


_CLUSTER_ONLY = {"stream_remove_peer_response", "stream_leader_stepdown_response",
                 "consumer_leader_stepdown_response"}


def not_enabled_response(tokens: list[bytes], payload: bytes = b"") -> dict[str, Any] | None:
    """nats-server's answer to an API request of an account without JetStream.

    Consumer creates still have their body parsed first, and CONSUMER.INFO its body
    checked for emptiness, as nats-server does before it looks at the account.
    """
    words = tuple(t.decode(errors="replace") for t in tokens)
    kind = _NOT_ENABLED_TYPES.get(words[:3]) or _NOT_ENABLED_TYPES.get(words[:2])
    if kind is None:
        return None
    err = E.cluster_required() if kind in _CLUSTER_ONLY else E.not_enabled_for_account()
    try:
        if kind == "consumer_create_response":
            parse_consumer_request(payload, strict=True)
        elif words[:2] == ("CONSUMER", "INFO") and not _empty_request(payload):
            err = E.not_empty_request()
    except E.ApiError as bad:
        err = bad
    return {"type": T + kind, "error": err.to_dict(), **EMPTY_EXTRAS.get(kind, {})}


_NOT_ENABLED_TYPES: dict[tuple[str, ...], str] = {
    ("INFO",): "account_info_response",
    **{k: v for k, v in RESPONSE_TYPES.items() if k != ("STREAM", "MSG")},
    ("STREAM", "MSG", "GET"): "stream_msg_get_response",
    ("STREAM", "MSG", "DELETE"): "stream_msg_delete_response",
    ("STREAM", "SNAPSHOT"): "stream_snapshot_response",
    ("STREAM", "RESTORE"): "stream_restore_response",
    ("STREAM", "PEER", "REMOVE"): "stream_remove_peer_response",
    ("STREAM", "LEADER", "STEPDOWN"): "stream_leader_stepdown_response",
    ("CONSUMER", "LEADER", "STEPDOWN"): "consumer_leader_stepdown_response",
}


def _empty_request(payload: bytes) -> bool:
    """Nothing, or a JSON object without keys."""
    if not payload or payload == b"{}":
        return True
    try:
        doc = json.loads(payload)
    except ValueError:
        return False
    return bool(doc == {})

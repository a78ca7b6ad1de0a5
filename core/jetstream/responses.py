"""The shapes of ``$JS.API`` answers: each request's response type, and the zero values
nats-server sends beside an error."""

from __future__ import annotations

from typing import Any

PREFIX = b"$JS.API."
T = "io.nats.jetstream.api.v1."


#: Zero values nats-server adds to these responses when they carry only an error.
EMPTY_EXTRAS: dict[str, dict[str, Any]] = {
    "stream_info_response": {"total": 0, "offset": 0, "limit": 0},
    "stream_purge_response": {"purged": 0},
    "stream_names_response": {"total": 0, "offset": 0, "limit": 0, "streams": None},
    "stream_list_response": {"total": 0, "offset": 0, "limit": 0, "streams": []},
    "consumer_names_response": {"total": 0, "offset": 0, "limit": 0, "consumers": []},
    "consumer_list_response": {"total": 0, "offset": 0, "limit": 0, "consumers": []},
    "stream_restore_response": {"deliver_subject": ""},
    "consumer_pause_response": {"paused": False, "pause_until": "0001-01-01T00:00:00Z"},
}
RESPONSE_TYPES = {
    ("STREAM", "CREATE"): "stream_create_response",
    ("STREAM", "UPDATE"): "stream_update_response",
    ("STREAM", "INFO"): "stream_info_response",
    ("STREAM", "DELETE"): "stream_delete_response",
    ("STREAM", "PURGE"): "stream_purge_response",
    ("STREAM", "NAMES"): "stream_names_response",
    ("STREAM", "LIST"): "stream_list_response",
    ("STREAM", "MSG"): "stream_msg_get_response",
    ("CONSUMER", "CREATE"): "consumer_create_response",
    ("CONSUMER", "DURABLE"): "consumer_create_response",
    ("CONSUMER", "INFO"): "consumer_info_response",
    ("CONSUMER", "DELETE"): "consumer_delete_response",
    ("CONSUMER", "NAMES"): "consumer_names_response",
    ("CONSUMER", "LIST"): "consumer_list_response",
    ("CONSUMER", "PAUSE"): "consumer_pause_response",
    ("CONSUMER", "UNPIN"): "consumer_unpin_response",
}


def response_type(tokens: list[bytes]) -> str:
    words = tuple(t.decode(errors="replace") for t in tokens[:3])
    if words[:3] == ("STREAM", "MSG", "DELETE"):
        return "stream_msg_delete_response"
    if words[:1] == ("INFO",):
        return "account_info_response"
    return RESPONSE_TYPES.get((words[0], words[1]) if len(words) > 1 else ("", ""),
                              "error_response")

"""The hot path of the door, ``POST /v1/publish/<subject>``, served without the router.

FastAPI's routing and dependency resolution cost more than the publish itself, so a
plain publish (no query string) is answered here, before the application, with exactly
what the documented route does; anything else (queries, other paths) goes on to FastAPI.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from jetport.api.auth import authenticate
from jetport.api.errors import HttpError
from jetport.api.messages import check_subject, header_block, header_pairs
from jetport.api.publish import publish_one

if TYPE_CHECKING:
    from jetport.api.door import HttpDoor

PREFIX = "/v1/publish/"
_ENVELOPE = b"application/vnd.jetport.message+json"


class FastPublish:
    def __init__(self, app: Any, door: HttpDoor) -> None:
        self.app = app
        self.door = door

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if (scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]
                or not path.startswith(PREFIX) or "/" in path[len(PREFIX):]):
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        auth = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                auth = value.decode("latin-1")
            elif key == b"content-type" and value.startswith(_ENVELOPE):
                await self.app(scope, receive, send)  # the envelope form: the full route
                return
            elif key.startswith((b"nats-", b"x-nats-header-")):
                headers[key.decode("latin-1")] = value.decode("latin-1")
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            client = await authenticate(self.door, auth, (scope.get("client") or ("",))[0])
            subject = check_subject(unquote(path[len(PREFIX):]))
            status, doc = await publish_one(self.door, client, subject,
                                            header_block(header_pairs(headers)), body)
            payload = json.dumps(doc, separators=(",", ":")).encode()
            extra = []
        except HttpError as exc:
            status = exc.status
            payload = json.dumps({"error": {"code": exc.status, "err_code": exc.err_code,
                                            "description": exc.description}}).encode()
            extra = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(payload)), *extra]})
        await send({"type": "http.response.body", "body": payload})

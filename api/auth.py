"""Who is calling: each request authenticates with the core's authenticator.

``Authorization: Bearer <token>`` is a token (or, when it looks like one, a bearer user
JWT in operator mode); ``Basic`` carries user and password; no header takes the no-auth
path (everyone when the hub has no auth, or ``no_auth_user``).  Refusals count in the
authenticator's failures of connection type ``HTTP``.  The result is a
:class:`~jetport.api.session.DoorClient` of the caller's account carrying the caller's
permissions, shared by the requests of one identity and refreshed on each of them.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from fastapi import Request

from jetport.api.errors import HttpError
from jetport.api.session import DoorClient
from jetport.core import security
from jetport.core.auth import AuthError, Principal

if TYPE_CHECKING:
    from jetport.api.door import HttpDoor

CONN_TYPE = "HTTP"
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="jetport", charset="UTF-8"'}
#: Identities whose clients are kept; the oldest is dropped beyond this.
MAX_SESSIONS = 4096


def credentials(header: str | None) -> dict[str, Any]:
    """The CONNECT-style fields an ``Authorization`` header carries."""
    if not header:
        return {}
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    scheme = scheme.lower()
    if scheme == "bearer" and value:
        if value.startswith("eyJ") and value.count(".") == 2:
            return {"jwt": value}
        return {"auth_token": value}
    if scheme == "basic" and value:
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise HttpError(401, 10401, "malformed basic credentials", _CHALLENGE) from None
        if sep:
            return {"user": user, "pass": password}
    raise HttpError(401, 10401, "unsupported authorization scheme", _CHALLENGE)


#: Sent by the browser console, which asks for credentials itself: its 401s carry no
#: challenge, so the browser does not put up its own login prompt.
CONSOLE_HEADER = "x-jetport-console"


async def caller(request: Request) -> DoorClient:
    """FastAPI dependency: the authenticated caller's client, or 401."""
    door: HttpDoor = request.app.state.door
    try:
        return await authenticate(door, request.headers.get("authorization"),
                                  request.client.host if request.client else "")
    except HttpError as exc:
        if CONSOLE_HEADER in request.headers:
            exc.headers = None
        raise


async def authenticate(door: HttpDoor, header: str | None, ip: str) -> DoorClient:
    hub = door.hub
    try:
        opts = credentials(header)
    except HttpError:
        hub.auth.note_failure(CONN_TYPE)
        await hub.auth.slow_refusal(ip)
        raise
    try:
        principal = await hub.auth.authenticate(opts, "", CONN_TYPE, None, ip)
    except AuthError as exc:
        await hub.auth.slow_refusal(ip)
        raise HttpError(401, 10401, "authorization violation", _CHALLENGE) from exc
    await security.prepare(hub, principal)
    account = security.account_for(hub, principal)
    key = (account.name, principal.user)
    client = door.sessions.get(key)
    if client is None or client.account is not account:
        if client is not None:
            client.close()
        if len(door.sessions) >= MAX_SESSIONS:
            door.sessions.pop(next(iter(door.sessions))).close()
        client = door.sessions[key] = DoorClient(hub, account, principal)
    else:
        client.refresh(principal)
    return client


def fresh_client(door: HttpDoor, shared: DoorClient) -> DoorClient:
    """A client of its own for a long-lived request (SSE), like ``shared``'s identity."""
    return DoorClient(door.hub, shared.account, _principal_of(shared))


def _principal_of(client: DoorClient) -> Principal:
    return Principal(client.user, client.account.name, client.perms,
                     max_payload=client.max_payload)

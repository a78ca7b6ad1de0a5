"""MQTT 5 enhanced authentication (4.12): SCRAM-SHA-256 and -512 in AUTH packets.

At CONNECT the client names the method and sends SCRAM's client-first message as
Authentication Data; the door answers AUTH 0x18 (Continue authentication) with the
server-first message, the client AUTH 0x18 with its proof, and the door either accepts
(CONNACK 0x00 carrying the server-final message, so the client knows the server had
its password) or refuses (CONNACK 0x86, Bad user name or password, after the same delay
as a failed password login).  On a live connection the client may start again with AUTH
0x19 (Re-authenticate): the same exchange, ended by AUTH 0x00 with the server-final
message; a failure there, or a proof for another user than the connection's, is
DISCONNECT 0x87 (Not authorized), and success applies the user's current permissions to
the session.

The users are the password logins' (the door asks the core's authenticator, or the
mqtt block's own user), and so is the principal a proof yields.  A method other than
the two SCRAM ones, or a server without name-and-password users, is refused with 0x8C
(Bad authentication method).  A user whose password is a bcrypt hash cannot log in
this way: SCRAM needs the plain text; the exchange runs to its end and is refused with
0x86 like a wrong password, and the log says why.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from jetport.bridges.mqtt.packets import (
    BAD_AUTHENTICATION_METHOD,
    BAD_USER_NAME_OR_PASSWORD,
    CONTINUE_AUTHENTICATION,
    NOT_AUTHORIZED,
    PROTOCOL_ERROR,
    RE_AUTHENTICATE,
    Auth,
    ConnAck,
    Disconnect,
    ProtocolError,
)
from jetport.core import security
from jetport.core.auth import AuthError, Principal
from jetport.core.scram import ScramError, ScramServer
from jetport.core.tasks import spawn

if TYPE_CHECKING:
    from jetport.bridges.mqtt.connection import MqttConnection


class EnhancedAuth:
    """The enhanced authentication of one connection: its method, and the exchange under
    way (at CONNECT or a re-authentication)."""

    def __init__(self, conn: MqttConnection, method: str) -> None:
        self.conn = conn
        self.method = method
        self._login: ScramServer | None = None

    def _auth(self, code: int, data: bytes) -> Auth:
        return Auth(code, {"authentication_method": self.method, "authentication_data": data})

    async def _challenge(self, client_first: bytes) -> bytes | None:
        """Server-first for ``client_first`` (key derivation off the event loop), or None
        when the method is not offered here."""
        login = self.conn.door.scram_login(self.method)
        if login is None:
            return None
        self._login = login
        return await asyncio.to_thread(login.first, client_first)

    def _finish(self, client_final: bytes) -> tuple[bytes, Principal]:
        login, self._login = self._login, None
        if login is None:
            raise AuthError("SCRAM: client-final message out of turn")
        return self.conn.door.scram_finish(login, client_final, self.conn)

    # -- at CONNECT ---------------------------------------------------------------------

    async def connect(self, username: str | None,
                      data: bytes) -> tuple[Principal, bytes] | None:
        """Run the exchange a CONNECT started: the principal and the server-final
        message, or None once the client was refused (and told)."""
        conn = self.conn
        try:
            server_first = await self._challenge(data)
        except ScramError as exc:
            conn.hub.auth.note_failure(conn.kind)
            await self._refused(f"SCRAM: {exc}")
            return None
        if server_first is None:
            conn.note(f"authentication method {self.method!r} not offered")
            conn.send(ConnAck(False, BAD_AUTHENTICATION_METHOD))
            conn.close(linger=True)
            return None
        conn.send(self._auth(CONTINUE_AUTHENTICATION, server_first))
        reply = await conn.next_held()
        if reply is None:
            return None
        if isinstance(reply, Disconnect):  # the client gave up: no answer owed
            conn.close()
            return None
        if not isinstance(reply, Auth):
            if isinstance(reply, ProtocolError):
                conn._protocol_error(reply)
            else:
                conn._protocol_error(ProtocolError(PROTOCOL_ERROR, f"{type(reply).__name__} "
                                                  "before the authentication ended"))
            return None
        if reply.reason_code != CONTINUE_AUTHENTICATION or \
                reply.properties.get("authentication_method") != self.method:
            conn._protocol_error(ProtocolError(PROTOCOL_ERROR, "AUTH out of turn"))
            return None
        try:
            server_final, principal = self._finish(
                reply.properties.get("authentication_data", b""))
        except AuthError as exc:
            await self._refused(str(exc))
            return None
        if username is not None and username != principal.user:
            await self._refused(f"user name {username!r} is not the SCRAM user")
            return None
        return principal, server_final

    async def _refused(self, why: str) -> None:
        conn = self.conn
        conn.note(f"authentication error: {why}", error=True)
        await conn.hub.auth.slow_refusal(conn.ip)
        if not conn.closing:
            conn.send(ConnAck(False, BAD_USER_NAME_OR_PASSWORD))
            conn.close(linger=True)

    def connack_properties(self, server_final: bytes) -> dict[str, object]:
        return {"authentication_method": self.method, "authentication_data": server_final}

    # -- re-authentication --------------------------------------------------------------

    def received(self, pkt: Auth) -> None:
        """An AUTH on a live connection: the start or the proof of a re-authentication."""
        conn = self.conn
        if pkt.properties.get("authentication_method") != self.method:
            conn._protocol_error(ProtocolError(PROTOCOL_ERROR,
                                              "re-authentication with another method"))
            return
        data = pkt.properties.get("authentication_data", b"")
        if pkt.reason_code == RE_AUTHENTICATE and self._login is None:
            spawn(self._reauthenticate(data), f"{conn.who} - MQTT re-authentication")
        elif pkt.reason_code == CONTINUE_AUTHENTICATION and self._login is not None:
            self._reauthenticated(data)
        else:
            conn._protocol_error(ProtocolError(PROTOCOL_ERROR, "AUTH out of turn"))

    async def _reauthenticate(self, client_first: bytes) -> None:
        try:
            server_first = await self._challenge(client_first)
        except ScramError as exc:
            self._login = None
            self.conn.hub.auth.note_failure(self.conn.kind)
            await self._deny(f"SCRAM: {exc}")
            return
        if server_first is None:
            await self._deny(f"authentication method {self.method!r} no longer offered")
        elif not self.conn.closing:
            self.conn.send(self._auth(CONTINUE_AUTHENTICATION, server_first))

    def _reauthenticated(self, client_final: bytes) -> None:
        conn = self.conn
        session = conn.session
        try:
            server_final, principal = self._finish(client_final)
        except AuthError as exc:
            spawn(self._deny(str(exc)), f"{conn.who} - MQTT re-authentication refused")
            return
        if session is None or principal.user != session.user or \
                security.account_for(conn.hub, principal) is not session.account:
            spawn(self._deny(f"re-authenticated as {principal.user!r}, not as the "
                             "connection's user"), f"{conn.who} - MQTT re-authentication refused")
            return
        session.rebind(principal)
        conn.note(f"re-authenticated as {principal.user!r}")
        conn.send(self._auth(0, server_final))

    async def _deny(self, why: str) -> None:
        conn = self.conn
        conn.note(f"re-authentication error: {why}", error=True)
        await conn.hub.auth.slow_refusal(conn.ip)
        if not conn.closing:
            conn.send(Disconnect(NOT_AUTHORIZED))
            conn.close(linger=True)

"""Origin checks for browsers, as nats-server's websocket ``same_origin`` and
``allowed_origins`` do them.

A request without an Origin header passes: only browsers send one, and any other client
could send whatever it liked anyway.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from jetport.core.config.websocket import WebSocketOptions


def _host_port(hostport: str, tls: bool) -> tuple[str, str]:
    """Lower-cased host and port, the scheme's default port when none is given."""
    parts = urlsplit("//" + hostport)
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return host, str(port) if port is not None else ("443" if tls else "80")


def origin_error(opts: WebSocketOptions, headers: dict[str, str], tls: bool) -> str | None:
    """Why the request's origin is refused, or None when it may connect."""
    if not opts.same_origin and not opts.allowed_origins:
        return None
    origin = headers.get("origin") or headers.get("sec-websocket-origin") or ""
    if not origin:
        return None
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:
        return f"invalid origin {origin!r}"
    host, port = _host_port(parts.netloc, parts.scheme == "https")
    if opts.same_origin:
        req_host, req_port = _host_port(headers.get("host", ""), tls)
        scheme = "https" if tls else "http"
        if (host, port) != (req_host, req_port) or parts.scheme.lower() != scheme:
            return "not same origin"
    if opts.allowed_origins:
        for allowed in opts.allowed_origins:
            a = urlsplit(allowed)
            if a.scheme == parts.scheme and _host_port(a.netloc, a.scheme == "https") == (
                host, port
            ):
                return None
        return "not in the allowed list"
    return None

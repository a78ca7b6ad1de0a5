"""``?domain=``: the JetStream a route's stream, consumer, KV or object request goes to.

Without it, a route uses this hub's own JetStream (``$JS.API``); with ``domain=D`` it
uses domain D's (``$JS.D.API``), such as the cluster a leaf node hub is linked to, as a
NATS client does with ``nc.jetstream(domain=D)``.  Writes to a KV or object bucket of
another domain go through its API prefix (``$JS.D.API.$KV.…``), which the owning server
maps back.  A publish with a domain always waits for the domain's stream to acknowledge:
no stream there (or the domain unreachable) is a 503, never a 202.

The value is per request, kept in a context variable the routes' dependency sets: the
door's clients are shared by every request of a caller.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Annotated

from fastapi import Query

from jetport.api.errors import bad_request

#: The current request's JetStream domain; "" for this hub's own.
DOMAIN: ContextVar[str] = ContextVar("jetstream_domain", default="")


async def js_domain(domain: Annotated[str | None, Query(
        description="JetStream domain to use instead of this hub's own (for a leaf node "
                    "hub: the cluster's domain)")] = None) -> None:
    """Route dependency: take ``?domain=`` for this request."""
    if domain is not None and (not domain or any(c in domain for c in ".*> \t\r\n")):
        raise bad_request(f"invalid JetStream domain {domain!r}")
    DOMAIN.set(domain or "")


def api_subject(rest: str) -> str:
    """``$JS.API.<rest>``, or the current domain's ``$JS.<d>.API.<rest>``."""
    domain = DOMAIN.get()
    return f"$JS.{domain}.API.{rest}" if domain else f"$JS.API.{rest}"


def write_subject(subject: bytes) -> bytes:
    """Where a stored subject is written in the current domain: ``$KV.…`` and
    ``$OBJ.…`` never cross a leaf link, so they go by the domain's API prefix."""
    domain = DOMAIN.get()
    if domain and subject.startswith((b"$KV.", b"$OBJ.")):
        return b"$JS.%s.API.%s" % (domain.encode(), subject)
    return subject

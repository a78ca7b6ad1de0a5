"""What a leafnode connection sends, as bytes: the other half of :mod:`.codec`.

Each function lays out one frame as nats-server writes it; the field checks are the
events' own (:mod:`.events`), so what is encoded is what the codec would read back.
"""

from __future__ import annotations

from jetport.bridges.leafnode.events import (
    Connect,
    Event,
    Info,
    LeafConnectOptions,
    LeafMsg,
    LeafMsgs,
    LeafSub,
    LeafUnsub,
    Ok,
    Ping,
    Pong,
    ProtocolViolation,
    RemoteError,
    ServerInfo,
    connect_json,
    info_json,
    is_token,
)
from jetport.bridges.nats.codec import CRLF, PING, PONG


def encode_connect(options: LeafConnectOptions) -> bytes:
    """``CONNECT {json}`` as a soliciting nats-server writes it (no blank before CRLF)."""
    return b"CONNECT " + connect_json(options) + CRLF


def encode_info(info: ServerInfo) -> bytes:
    """``INFO {json} `` with the blank before CRLF that nats-server writes.  A solicited
    nats-server needs ``client_id`` and ``leafnode_urls`` (non-empty: Go leaves an empty
    list out) in the first INFO, or it decides it dialled the wrong port."""
    return b"INFO " + info_json(info) + b" \r\n"


def encode_err(text: str) -> bytes:
    return b"-ERR '" + text.encode("utf-8", "surrogateescape") + b"'\r\n"


def encode_sub(subject: bytes, queue: bytes | None = None, weight: int = 1) -> bytes:
    """``LS+ subject`` or, for a queue group, ``LS+ subject queue weight``."""
    LeafSub(subject, queue, weight)  # checks the fields
    if queue is None:
        return b"LS+ " + subject + CRLF
    return b"LS+ %b %b %d\r\n" % (subject, queue, weight)


def encode_unsub(subject: bytes, queue: bytes | None = None) -> bytes:
    LeafUnsub(subject, queue)
    if queue is None:
        return b"LS- " + subject + CRLF
    return b"LS- " + subject + b" " + queue + CRLF


def encode_msg(
    subject: bytes,
    reply: bytes | None,
    queues: tuple[bytes, ...] | list[bytes],
    headers: bytes | None,
    payload: bytes,
    *,
    peer_headers: bool = True,
) -> bytes:
    """LMSG, or HMSG when there are headers and the peer announced ``headers`` (a peer
    that did not gets LMSG with the headers cut off, as nats-server does).

    ``queues`` are the peer's queue groups this message is for: the peer delivers to
    one member of each, and to no queue member when there are none.
    """
    return encode_msgs(subject, reply, queues, headers, [payload], peer_headers=peer_headers)


def encode_msgs(
    subject: bytes,
    reply: bytes | None,
    queues: tuple[bytes, ...] | list[bytes],
    headers: bytes | None,
    payloads: list[bytes],
    *,
    peer_headers: bool = True,
) -> bytes:
    """:func:`encode_msg` for several payloads sharing the rest, checked and laid out
    once (a run of publishes to one subject crosses a link as one write)."""
    if not is_token(subject) or (reply is not None and not is_token(reply)):
        raise ValueError(f"subject and reply must be tokens: {subject!r} {reply!r}")
    if not all(is_token(q) for q in queues):
        raise ValueError(f"queue names must be tokens: {queues!r}")
    if queues:
        names = b" ".join(queues)
        route = b"+ " + reply + b" " + names if reply else b"| " + names
        args = subject + b" " + route + b" "
    elif reply:
        args = subject + b" " + reply + b" "
    else:
        args = subject + b" "
    if headers and peer_headers:
        head, hl = b"HMSG " + args, len(headers)
        return b"".join([b"%b%d %d\r\n%b%b\r\n" % (head, hl, hl + len(p), headers, p)
                         for p in payloads])
    head = b"LMSG " + args
    if len(payloads) == 1:
        return b"%b%d\r\n%b\r\n" % (head, len(payloads[0]), payloads[0])
    return b"".join([b"%b%d\r\n%b\r\n" % (head, len(p), p) for p in payloads])


def encode(event: Event) -> bytes:
    """The bytes that make the peer's codec produce ``event`` (for the events a leaf
    connection sends; a :class:`ProtocolViolation` is its ``-ERR``, if any)."""
    if isinstance(event, LeafMsg):
        return encode_msg(event.subject, event.reply, event.queues, event.headers,
                          event.payload)
    if isinstance(event, LeafMsgs):
        return encode_msgs(event.subject, event.reply, (), None, event.payloads)
    if isinstance(event, LeafSub):
        return encode_sub(event.subject, event.queue, event.weight)
    if isinstance(event, LeafUnsub):
        return encode_unsub(event.subject, event.queue)
    if isinstance(event, Ping):
        return PING
    if isinstance(event, Pong):
        return PONG
    if isinstance(event, Ok):
        return b"+OK\r\n"
    if isinstance(event, RemoteError):
        return encode_err(event.text)
    if isinstance(event, Connect):
        return encode_connect(event.options)
    if isinstance(event, Info):
        return encode_info(event.info)
    if isinstance(event, ProtocolViolation):
        return b"" if event.err is None else encode_err(event.err)
    raise TypeError(f"not a leafnode event: {event!r}")

"""The NATS client protocol, server side, without I/O.

:class:`ServerCodec` turns bytes from a client into events with
:meth:`ServerCodec.receive_data` and events for the client into bytes with the
``encode_*`` functions of :mod:`jetport.bridges.nats.encoder`.  It keeps the state the
protocol itself defines (the options of the last CONNECT, a payload still being read)
and applies the rules nats-server applies while reading: limits on control lines and
payloads, argument counts, the headers handshake.  It knows nothing of sockets, clocks,
subscriptions or authorization.

Events are plain tuples whose first item is one of the ``OP_*`` constants, because one
is made per message on the hottest path:

``(OP_PUB, subject, reply | None, headers | None, payload)``
``(OP_PUBS, subject, reply | None, None, [payload, ...])``  consecutive PUBs to one
subject with one reply, read together; one lookup routes them all
``(OP_SUB, subject, queue | None, sid)``
``(OP_UNSUB, sid, max_msgs | None)``  (``max_msgs`` -1 when it was not a number)
``(OP_CONNECT, options)``  (the client's JSON merged over nats-server's defaults)
``(OP_PING,)`` and ``(OP_PONG,)``
``(OP_ERROR, text)``  a soft error: send ``-ERR`` and keep reading
``(OP_CLOSE, text | None)``  a fatal error: send ``-ERR`` when ``text`` is set, then
close; always the last event, the codec accepts nothing afterwards.
"""

from __future__ import annotations

import json
from typing import Any, cast

from jetport.core.config.options import DEFAULT_MAX_CONTROL_LINE, DEFAULT_MAX_PAYLOAD
from jetport.core.memo import remember

OP_PUB = 1
OP_SUB = 2
OP_UNSUB = 3
OP_CONNECT = 4
OP_PING = 5
OP_PONG = 6
OP_ERROR = 7
OP_CLOSE = 8
OP_PUBS = 9

#: ``(OP_..., fields...)``: see the module docstring for each operation's fields.
Event = tuple[Any, ...]

ERR_UNKNOWN_OP = "Unknown Protocol Operation"
ERR_CONTROL_LINE = "maximum control line exceeded"
ERR_MAX_PAYLOAD = "Maximum Payload Violation"
ERR_AUTH = "Authorization Violation"
ERR_PROTOCOL = "invalid client protocol"
ERR_NO_RESPONDERS = "no responders requires headers support"
ERR_INVALID_SUBJECT = "Invalid Subject"
ERR_INVALID_PUB_SUBJECT = "Invalid Publish Subject"

CONNECT_DEFAULTS: dict[str, Any] = {"verbose": True, "pedantic": True, "echo": True}
#: CONNECT fields that must be strings (or null) when present.
CONNECT_STRINGS = ("user", "pass", "auth_token", "name", "lang", "version", "nkey", "sig",
                   "jwt")
#: CONNECT fields that must be booleans (null counts as absent).
CONNECT_FLAGS = ("verbose", "pedantic", "echo", "headers", "no_responders", "tls_required")

PING = b"PING\r\n"
PONG = b"PONG\r\n"
OK = b"+OK\r\n"

CRLF = b"\r\n"


class ServerCodec:
    """Parse a client's byte stream.

    :param max_control_line: longest control line arguments accepted (nats-server
        default 4096 bytes); longer ones close the connection.
    :param max_payload: largest message (headers plus payload) accepted, checked from
        the control line before the payload is read (default 1 MiB).
    """

    def __init__(
        self,
        max_control_line: int = DEFAULT_MAX_CONTROL_LINE,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self.max_control_line = max_control_line
        self.max_payload = max_payload
        #: Options from the last CONNECT; what the server assumes before one arrives.
        self.options: dict[str, Any] = dict(CONNECT_DEFAULTS)
        self.headers = False
        self.connected = False
        self._buf = b""
        # A PUB/HPUB whose payload has not fully arrived: (subject, reply, hdr_len, size)
        self._pending: tuple[bytes, bytes | None, int, int] | None = None
        # Filled only while a payload is split over reads (a fresh list each time), so
        # the idle state shares one empty tuple.
        self._chunks: list[bytes] | tuple[()] = ()
        self._have = 0
        self.closed = False

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the client; return the events they complete."""
        if self.closed:
            return []
        events: list[Event] = []
        if self._pending is not None:
            chunks = cast(list[bytes], self._chunks)
            self._have += len(data)
            subject, reply, hsize, size = self._pending
            if self._have < size + 2:
                chunks.append(data)
                return events
            end = len(data) - (self._have - size - 2)  # just past the CRLF, in data
            self._chunks = ()
            self._pending = None
            if end >= 2:
                # The payload is the earlier reads and the head of this one, copied once;
                # the rest of this read is parsed where it lies (64 KiB payloads: two
                # copies of each read fewer).
                if data[end - 2 : end] != CRLF:
                    return self._close(events, ERR_UNKNOWN_OP)
                parts: list[bytes | memoryview] = [*chunks, memoryview(data)[: end - 2]]
                events.append(_pub(subject, reply, hsize, b"".join(parts)))
                if size >= LARGE_PAYLOAD:
                    self._positional(data, end, events)
                    return events
                buf = data[end:]
            else:  # the CRLF itself is cut between reads
                chunks.append(data)
                data = b"".join(chunks)
                if data[size : size + 2] != CRLF:
                    return self._close(events, ERR_UNKNOWN_OP)
                events.append(_pub(subject, reply, hsize, data[:size]))
                buf = data[size + 2 :]
        elif self._buf:
            buf = self._buf + data
        else:
            buf = data
        self._buf = b""
        if buf:
            self._walk(buf, events)
        return events

    def _walk(self, buf: bytes, events: list[Event]) -> None:
        """Parse ``buf`` by walking its CRLF-separated parts.

        Most frames are a control line and a payload without CRLF inside, which makes
        them two consecutive parts: that case costs a comparison and a length check,
        and consecutive PUBs to one subject are gathered into one ``OP_PUBS`` event.
        Anything else (a payload holding CRLF, HPUB, a partial frame) is parsed at
        its byte offset by :meth:`_one`, and the walk resumes after it.
        """
        # split() finds CRLF with a two-byte search over every payload byte (1.4 us per
        # KiB here), while _positional() finds each control line's end with memchr and
        # skips the payload by its size: when the first frame is a PUB or HPUB of
        # LARGE_PAYLOAD or more, the rest are parsed that way (64 KiB payloads: 83 -> 5.4 us per
        # message).
        # A shorter read gains nothing, and its first line would be parsed twice (one
        # request per read of request/reply traffic).
        end = buf.find(b"\r", 0, 256) if len(buf) > LARGE_PAYLOAD else -1
        if end > 0 and _large_first(buf[:end], self.headers):
            self._positional(buf, 0, events)
            return
        parts = buf.split(CRLF)
        last = len(parts) - 1
        append = events.append
        i = pos = 0
        prev = None  # the last PUB control line, and what it says
        subject = reply = run = None
        open_run = False  # the last event is a PUB(S) of subject/reply, open to more
        size = 0
        max_line, max_payload = self.max_control_line + 4, self.max_payload
        while i < last:
            line = parts[i]
            if line != prev:
                if line.startswith(b"PUB "):
                    known = _PUB_LINES.get(line)
                    if known is None:
                        if b"\n" in line:
                            self._positional(buf, pos, events)
                            return
                        known = _parse_pub_line(line)
                        if known is None:
                            self._close(events, None)
                            return
                    s, r, size = known
                    if len(line) > max_line:
                        self._close(events, ERR_CONTROL_LINE)
                        return
                    if size > max_payload:
                        self._close(events, ERR_MAX_PAYLOAD)
                        return
                    if s != subject or r != reply:
                        subject, reply, run, open_run = s, r, None, False
                    prev = line
                else:
                    prev = subject = run = None
                    open_run = False
                    if b"\n" in line:
                        self._positional(buf, pos, events)
                        return
                    if line.startswith(b"HPUB ") and self.headers:
                        # Inlined HPUB: the frame is sliced out at its offset and the
                        # walk skips the parts its header lines made, where _one and
                        # _resync parsed it again (the codec alone, 1,000 subjects with
                        # one HPUB in four: 790k -> 1.07M msgs/s).
                        hpub = _HPUB_LINES.get(line) or _parse_hpub_line(line)
                        if hpub is not None and len(line) - 5 <= self.max_control_line:
                            s, r, hsize, size = hpub
                            start = pos + len(line) + 2
                            stop = start + size
                            if (size <= max_payload and stop + 2 <= len(buf)
                                    and buf[stop:stop + 2] == CRLF):
                                body = buf[start:stop]
                                append(_pub(s, r, hsize, body))
                                i += 2 + body.count(CRLF)
                                pos = stop + 2
                                continue
                    op = line[:5].upper()
                    if op.startswith((b"PUB", b"HPUB")):
                        new = self._one(buf, pos, events)
                        if new is None:
                            return
                        i, pos = _resync(parts, i, pos, new)
                        continue
                    ev = self._control(line, op)
                    i += 1
                    pos += len(line) + 2
                    if ev is not None:
                        append(ev)
                        if ev[0] == OP_CLOSE:
                            self.closed = True
                            return
                    continue
            # A PUB: its payload should be the next part, CRLF-terminated.
            if i + 1 < last and len(parts[i + 1]) == size:
                payload = parts[i + 1]
                if run is not None:
                    run.append(payload)
                elif open_run:
                    run = [events[-1][4], payload]
                    events[-1] = (OP_PUBS, subject, reply, None, run)
                else:
                    append((OP_PUB, subject, reply, None, payload))
                    open_run = True
                i += 2
                pos += len(line) + size + 4
                continue
            prev = subject = run = None
            open_run = False
            new = self._one(buf, pos, events)
            if new is None:
                return
            i, pos = _resync(parts, i, pos, new)
        tail = parts[last] if i == last else buf[pos:]
        if b"\n" in tail:
            self._positional(buf, pos, events)
            return
        self._stash(tail, events)

    def _stash(self, tail: bytes, events: list[Event]) -> None:
        """Keep an incomplete control line for the next read, within the limits."""
        if tail and len(tail) > self.max_control_line + 8:
            self._close(events, ERR_CONTROL_LINE)
            return
        self._buf = tail

    def _positional(self, buf: bytes, pos: int, events: list[Event]) -> None:
        """Parse op by op from ``pos``.  A complete PUB is taken here: its line ends at
        the first LF, its payload is sliced out by its size, and consecutive ones to
        one subject gather into one ``OP_PUBS`` event as in :meth:`_walk`.  Anything
        else (bare-LF lines, other ops, errors, a frame cut by the read) goes to
        :meth:`_one`."""
        n = len(buf)
        append = events.append
        max_line, max_payload = self.max_control_line + 4, self.max_payload
        subject: bytes | None = None
        reply: bytes | None = None
        run: list[bytes] | None = None
        open_run = False  # as in _walk
        while pos < n:
            nl = buf.find(b"\n", pos)
            if nl > pos + 4 and buf[nl - 1] == 13 and nl - 1 - pos <= max_line:
                line = buf[pos:nl - 1]
                known = _PUB_LINES.get(line)
                if known is None and line.startswith(b"PUB "):
                    known = _parse_pub_line(line)
                if known is not None:
                    s, r, size = known
                    start = nl + 1
                    stop = start + size
                    if size <= max_payload and stop + 2 <= n and buf[stop] == 13 \
                            and buf[stop + 1] == 10:
                        payload = buf[start:stop]
                        # _walk's run gathering written out again: through a shared
                        # function the pure build parses 1 KiB PUBs 5-8% slower (the
                        # codec alone: 1.34 -> 1.24M/s to one subject).
                        if s != subject or r != reply:
                            subject, reply, run, open_run = s, r, None, False
                        if run is not None:
                            run.append(payload)
                        elif open_run:
                            run = [events[-1][4], payload]
                            events[-1] = (OP_PUBS, subject, reply, None, run)
                        else:
                            append((OP_PUB, s, r, None, payload))
                            open_run = True
                        pos = stop + 2
                        continue
            subject = reply = run = None
            open_run = False
            new = self._one(buf, pos, events)
            if new is None:
                return
            pos = new

    def _one(self, buf: bytes, pos: int, events: list[Event]) -> int | None:
        """Parse one op at ``pos``; return where the next starts.

        None when the op is incomplete (its bytes are kept for the next read) or
        fatal (the close event is added).
        """
        nl = buf.find(b"\n", pos)
        if nl < 0:
            self._stash(buf[pos:], events)
            return None
        end = nl - 1 if nl > pos and buf[nl - 1] == 13 else nl
        line = buf[pos:end]
        start = nl + 1
        op = line[:5].upper()
        if op.startswith(b"PUB") and line[3:4] in (b" ", b"\t"):
            args = line[4:].split()
            hsize = 0
            oplen = 4
        elif op.startswith(b"HPUB") and line[4:5] in (b" ", b"\t"):
            if not self.headers:
                self._close(events, None)
                return None
            args = line[5:].split()
            hsize = -1
            oplen = 5
        else:
            ev = self._control(line, op)
            if ev is not None:
                events.append(ev)
                if ev[0] == OP_CLOSE:
                    self.closed = True
                    return None
            return start
        if len(line) - oplen > self.max_control_line:
            self._close(events, ERR_CONTROL_LINE)
            return None
        nargs = len(args) - (1 if hsize else 0)
        size = _size(args[-1]) if nargs in (2, 3) else None
        if size is None:
            self._close(events, None)
            return None
        if hsize:
            header_size = _size(args[-2])
            if header_size is None or header_size > size:
                self._close(events, None)
                return None
            hsize = header_size
        if size > self.max_payload:
            self._close(events, ERR_MAX_PAYLOAD)
            return None
        subject = args[0]
        reply = args[1] if nargs == 3 else None
        stop = start + size
        if stop + 2 <= len(buf):
            if buf[stop : stop + 2] != CRLF:
                self._close(events, ERR_UNKNOWN_OP)
                return None
            events.append(_pub(subject, reply, hsize, buf[start:stop]))
            return stop + 2
        self._pending = (subject, reply, hsize, size)
        rest = buf[start:]
        self._chunks = [rest]
        self._have = len(rest)
        return None

    def _control(self, line: bytes, op: bytes) -> Event | None:
        """Every op but PUB/HPUB; returns at most one event."""
        if op.startswith(b"PING"):
            return (OP_PING,)
        if op.startswith(b"PONG"):
            return (OP_PONG,)
        word, _, rest = line.partition(b" ")
        if b"\t" in word:
            word, _, more = word.partition(b"\t")
            rest = more + b" " + rest
        word = word.upper()
        if len(line) > self.max_control_line + len(word) + 1:
            return (OP_CLOSE, ERR_CONTROL_LINE)
        if word == b"SUB":
            args = rest.split()
            if len(args) not in (2, 3):
                return (OP_CLOSE, None)
            return (OP_SUB, args[0], args[1] if len(args) == 3 else None, args[-1])
        if word == b"UNSUB":
            args = rest.split()
            if not args or len(args) > 2:
                return (OP_CLOSE, ERR_UNKNOWN_OP if not args else None)
            if len(args) == 1:
                return (OP_UNSUB, args[0], None)
            most = _size(args[1])
            return (OP_UNSUB, args[0], -1 if most is None else most)
        if word == b"CONNECT":
            return self._connect(rest)
        if word in (b"INFO", b"+OK"):
            return None
        if word == b"-ERR":
            return (OP_CLOSE, None)
        return (OP_CLOSE, ERR_UNKNOWN_OP)

    def _connect(self, raw: bytes) -> Event:
        """CONNECT's JSON decoded as nats-server's Go decoder does: keys match without
        regard to case (the last one wins), null means absent, a wrong type closes."""
        try:
            opts = json.loads(raw, object_pairs_hook=_lower_keys)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than Python's
            return (OP_CLOSE, None)
        if opts is None:
            opts = {}
        if not isinstance(opts, dict):
            return (OP_CLOSE, None)
        for key in CONNECT_FLAGS:
            if key in opts and opts[key] is None:
                del opts[key]
            elif key in opts and not isinstance(opts[key], bool):
                return (OP_CLOSE, None)
        for key in CONNECT_STRINGS:
            if opts.get(key) is not None and not isinstance(opts[key], str):
                return (OP_CLOSE, None)
        merged = dict(self.options)
        merged.update(opts)
        proto = merged.get("protocol", 0)
        if proto is None:
            proto = 0
        if not isinstance(proto, int) or isinstance(proto, bool):
            return (OP_CLOSE, None)
        if proto not in (0, 1):
            return (OP_CLOSE, ERR_PROTOCOL)
        if merged.get("no_responders") and not merged.get("headers"):
            return (OP_CLOSE, ERR_NO_RESPONDERS)
        self.options = merged
        self.headers = bool(merged.get("headers"))
        self.connected = True
        return (OP_CONNECT, merged)

    def _close(self, events: list[Event], text: str | None) -> list[Event]:
        self.closed = True
        self._buf = b""
        self._chunks = ()
        events.append((OP_CLOSE, text))
        return events


#: Parsed PUB control lines without a reply.  Publishers repeat subjects and sizes, so
#: most such lines have been seen before; lines with a reply (a request, a JetStream
#: publish) carry a fresh inbox each time, and JetStream acks fresh sequence numbers:
#: those are not kept, nor do they push out the lines that recur.  Shared by all connections;
#: it only holds syntax.
_PUB_LINES: dict[bytes, tuple[bytes, bytes | None, int]] = {}
_PUB_LINES_MAX = 8192
_JS_ACK = b"$JS.ACK."
#: From this payload size on a read that starts with such a PUB is parsed frame by frame
#: at offsets instead of split at every CRLF.  The codec alone, 64 KiB reads of PUBs to
#: one subject, millions per second split/positional: 512 B 1.31/1.15 pure and 1.78/3.92
#: compiled; 1 KiB 0.80/1.01 and 0.92/3.22; 128 B 2.80/1.31 and 4.52/2.85.
LARGE_PAYLOAD = 512


def _parse_pub_line(line: bytes) -> tuple[bytes, bytes | None, int] | None:
    """``PUB <subject> [reply] <size>`` → its parts, or None when malformed."""
    args = line[4:].split()
    nargs = len(args)
    size = _size(args[-1]) if nargs in (2, 3) else None
    if size is None:
        return None
    if nargs == 3:
        return (args[0], args[1], size)
    if args[0].startswith(_JS_ACK):
        return (args[0], None, size)
    return remember(_PUB_LINES, line, (args[0], None, size), _PUB_LINES_MAX)


_HPUB_LINES: dict[bytes, tuple[bytes, bytes | None, int, int]] = {}


def _large_first(line: bytes, headers: bool) -> bool:
    """Whether control line ``line`` starts a PUB or HPUB of ``LARGE_PAYLOAD`` or more.

    Lines with a reply subject (each JetStream publish has its own) are in no table, so
    they are parsed here: JetStream publishes in the codec alone, 1 KiB 1.85 -> 1.04 us a
    message (HPUB with a message id 3.36 -> 1.82), 64 KiB 60.7 -> 8.2 us."""
    if line.startswith(b"PUB "):
        pub = _PUB_LINES.get(line) or _parse_pub_line(line)
        return pub is not None and pub[2] >= LARGE_PAYLOAD
    if headers and line.startswith(b"HPUB "):
        hpub = _HPUB_LINES.get(line) or _parse_hpub_line(line)
        return hpub is not None and hpub[3] >= LARGE_PAYLOAD
    return False


def _parse_hpub_line(line: bytes) -> tuple[bytes, bytes | None, int, int] | None:
    """``HPUB <subject> [reply] <header size> <size>`` → its parts, or None when it is
    not a well-formed one (the positional parser then says why)."""
    args = line[5:].split()
    nargs = len(args)
    if nargs not in (3, 4):
        return None
    hsize, size = _size(args[-2]), _size(args[-1])
    if hsize is None or size is None or hsize > size:
        return None
    if nargs == 4:
        return (args[0], args[1], hsize, size)
    return remember(_HPUB_LINES, line, (args[0], None, hsize, size), _PUB_LINES_MAX)


def _size(token: bytes) -> int | None:
    """A size or count argument: ASCII digits only (None otherwise).  Past 19 digits it
    is more than any limit (and Python refuses to convert thousands of digits)."""
    if not token.isdigit():
        return None
    return int(token) if len(token) <= 19 else _TOO_BIG


_TOO_BIG = 1 << 63


def _resync(parts: list[bytes], i: int, pos: int, new: int) -> tuple[int, int]:
    """Advance the part index to the part that starts at byte offset ``new``."""
    while pos < new:
        pos += len(parts[i]) + 2
        i += 1
    return i, pos


def _pub(subject: bytes, reply: bytes | None, hsize: int, body: bytes) -> Event:
    if hsize:
        return (OP_PUB, subject, reply, body[:hsize], body[hsize:])
    return (OP_PUB, subject, reply, None, body)


_NAMES = {OP_PUB: "PUB", OP_PUBS: "PUB", OP_SUB: "SUB", OP_UNSUB: "UNSUB",
          OP_CONNECT: "CONNECT", OP_PING: "PING", OP_PONG: "PONG", OP_ERROR: "ERR",
          OP_CLOSE: "CLOSE"}


def go_quote(data: bytes) -> str:
    """``data`` as Go's ``%q`` writes it, without the surrounding quotes."""
    text = data.decode("utf-8", errors="surrogateescape")
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def payload_trace(msg: bytes, max_len: int) -> str:
    """The ``MSG_PAYLOAD`` trace of one message (headers and payload), cut at ``max_len``
    bytes (0: whole) with ``...`` as nats-server's ``max_traced_msg_len`` does."""
    if 0 < max_len < len(msg):
        return f'MSG_PAYLOAD: ["{go_quote(msg[:max_len])}..."]'
    return f'MSG_PAYLOAD: ["{go_quote(msg)}"]'


def trace_lines(event: Event, max_len: int = 0) -> list[str]:
    """An event as nats-server's protocol trace shows it: ``[SUB foo q 1]``, or for a
    publish its ``[PUB subject reply size]`` line and its payload."""
    op = event[0]
    if op in (OP_PUB, OP_PUBS):
        subject, reply, hdr = event[1], event[2], event[3]
        lines = []
        for body in (event[4] if op == OP_PUBS else (event[4],)):
            msg = body if hdr is None else hdr + body
            args = [subject, *([reply] if reply else [])]
            sizes = (str(len(body)),) if hdr is None else (str(len(hdr)), str(len(msg)))
            verb = "PUB" if hdr is None else "HPUB"
            lines.append(f"[{verb} {' '.join(a.decode(errors='replace') for a in args)} "
                         f"{' '.join(sizes)}]")
            lines.append(payload_trace(msg, max_len))
        return lines
    return [describe(event)]


def describe(event: Event) -> str:
    """One non-publish event as a protocol trace line shows it, e.g. ``[SUB foo q 1]``."""
    op = event[0]
    if op == OP_CONNECT:
        return f"[CONNECT {json.dumps(event[1], separators=(',', ':'))}]"
    args = [a if isinstance(a, str) else a.decode(errors="replace") if isinstance(a, bytes)
            else str(a) for a in event[1:] if a is not None]
    return f"[{' '.join([_NAMES[op], *args])}]"


def _lower_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Top-level and nested objects alike: lower-case keys, the last duplicate winning."""
    return {k.lower(): v for k, v in pairs}

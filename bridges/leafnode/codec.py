"""The NATS leafnode protocol on one connection, without I/O, for either role.

:class:`LeafCodec` turns the peer's bytes into events (:mod:`.events`) with
:meth:`LeafCodec.receive_data`; :mod:`.encoder` turns what we say into bytes.
Solicit role (we dialled): the peer sends INFO, LS+/LS-, LMSG/HMSG, PING/PONG, -ERR and
we send CONNECT.  Accept role (``accepting=True``): the peer must start with CONNECT.
The codec applies nats-server's reading rules (limits, argument layouts, which error
closes with which ``-ERR``) and knows nothing of sockets, clocks, accounts or interest.

Confirmed in nats-server's source where the digest (``spec/leafnode.md``) said
UNVERIFIED or left it open; "2.14.6" = line-numbered extracts of that tag, "obs" = seen
against nats-server 2.15.1 on loopback:

- No account token on a leaf connection, in either role, whatever ``proto``/``protocol``
  says (3 only means message tracing): ``leafnode.go`` ``processLeafSub`` takes 1 or 3
  arguments (subject, queue, weight), ``processLeafUnsub`` uses its whole argument as
  the key ``subject[ queue]``, ``processLeafMsgArgs``/``processLeafHeaderMsgArgs`` read
  the subject as ``args[0]``, ``writeLeafSub`` writes ``LS+ <key>[ <weight>]``, and
  ``client.go`` ``msgHeaderForRouteOrLeaf`` adds the account (and origin cluster) only
  for ROUTER targets.  Accounts and origin clusters are route-only (``route.go``).
- LMSG (``processLeafMsgArgs``): 2 args ``subj size``; 3 args ``subj reply size`` (any
  reply, even ``+`` or ``|``); 4 or more: ``args[1]`` must be exactly ``+`` (reply is
  ``args[2]``, queues ``args[3:-1]``) or ``|`` (queues ``args[2:-1]``), else "Bad or
  Missing Reply Indicator".  Header messages are ``HMSG`` with ``<hdr> <total>`` at the
  end (``parser.go`` HMSG_ARG → ``processLeafHeaderMsgArgs``); header > total fails.
  The writer (``msgHeaderForRouteOrLeaf``) sends ``+ reply q…``, ``| q…`` or ``reply``,
  HMSG only when the header size is > 0 and the peer announced ``headers``, otherwise
  LMSG with the headers cut off.
- Sizes and weights go through ``util.go`` ``parseSize``: 1 to 9 ASCII digits, else -1.
  A bad size closes without ``-ERR`` (obs: a 10-digit size is not a payload violation);
  a bad or zero LS+ weight is taken as 1 (``processLeafSub``: ``delta`` stays 1).
- Payload limit: ``processLeafMsgArgs`` checks the size against the connection's own
  ``max_payload`` (``createLeafNode`` sets ``mpay`` from local options, not the peer's
  INFO) → ``-ERR 'Maximum Payload Violation'``, close (2.14.6; obs for HMSG and PUB
  too, after the header ≤ total check).
- Control line: ``parser.go`` ``overMaxControlLineLimit`` allows non-client kinds 16 ×
  ``max_control_line`` (64 KiB) of argument bytes (after the op and its blanks), also
  on a line still arriving → ``-ERR 'maximum control line exceeded'``, close (2.14.6;
  obs 65536 bytes pass, 65537 close); older parsers (2020) had no limit for them.
- Other errors (``parser.go``): a bad op byte, an op not followed by its blank, or a
  payload not followed by CRLF → ``-ERR 'Unknown Protocol Operation'`` (``parseErr``);
  argument errors and undecodable CONNECT/INFO JSON close without ``-ERR`` (the
  ``readLoop`` closes on the returned error); before CONNECT on an accepted connection
  any op not starting with ``C`` → ``-ERR 'Authorization Violation'`` (``authErr``; obs
  also for INFO).
- The parser shares states between kinds, so on a leaf connection ``SUB``/``RS+`` are
  LS+, ``UNSUB``/``RS-`` are LS-, ``RMSG`` is LMSG, client ``PUB``/``HPUB`` are messages
  without queues (their arguments split on blanks only: ``client.go`` ``processPub``),
  ``A+``/``A-`` are read and ignored, ``MSG`` is unknown (obs).
- Byte-state quirks kept (``parser.go``, obs): the byte that ends the blanks after an op
  word starts the argument even if it is LF (``LS+ \\nfoo\\n`` is ``LS+ foo``), and a CR
  after the argument's first byte drops the argument's last byte (the ``drop`` flag).
- LS- for a key that was never added is ignored (``processLeafUnsub``), so LS- with no
  argument or more than two is ignored, not an error (obs).
- CONNECT fields (``leafnode.go`` ``leafConnectInfo``, all ``omitempty``): ``version
  nkey jwt sig user pass auth_token server_id domain name is_hub cluster headers
  jetstream deny_pub isolate compress_mode gateway remote_account protocol``; Go escapes
  ``>`` in ``deny_pub`` as ``\\u003e`` (obs).  INFO ends with a space before CRLF
  (``util.go`` ``generateInfoJSON``), CONNECT does not (``route.go`` ``ConProto``).
"""

from __future__ import annotations

import re

from jetport.bridges.leafnode.events import (
    Connect,
    Event,
    Info,
    JsonError,
    LeafMsg,
    LeafMsgs,
    LeafSub,
    LeafUnsub,
    Ok,
    Ping,
    Pong,
    ProtocolViolation,
    RemoteError,
    decode_connect,
    decode_info,
)
from jetport.bridges.nats.codec import (
    CRLF,
    ERR_AUTH,
    ERR_CONTROL_LINE,
    ERR_MAX_PAYLOAD,
    ERR_UNKNOWN_OP,
)
from jetport.core.config.options import DEFAULT_MAX_CONTROL_LINE, DEFAULT_MAX_PAYLOAD

#: Server-to-server connections may use this many times ``max_control_line``.
CONTROL_LINE_FACTOR = 16


# What an op means on a leaf connection.
_PING, _PONG, _OK, _CONNECT, _INFO, _ERR, _SUB, _UNSUB = range(8)
_LMSG, _HMSG, _PUB, _HPUB, _IGNORED = range(8, 13)
# What may follow the op word: anything up to the line end (and it is ignored), blanks
# or the argument at once, or at least one blank before the argument.
_ANY, _BLANK_OPTIONAL, _BLANK_REQUIRED = range(3)

#: Op words nats-server's parser accepts on a leaf connection (any case), in a table so
#: a partial line can be judged by the same rule as a whole one.
_OPS: tuple[tuple[bytes, int, int], ...] = (
    (b"LMSG", _LMSG, _BLANK_REQUIRED), (b"HMSG", _HMSG, _BLANK_REQUIRED),
    (b"LS+", _SUB, _BLANK_REQUIRED), (b"LS-", _UNSUB, _BLANK_REQUIRED),
    (b"PING", _PING, _ANY), (b"PONG", _PONG, _ANY), (b"+OK", _OK, _ANY),
    (b"CONNECT", _CONNECT, _BLANK_OPTIONAL), (b"INFO", _INFO, _BLANK_OPTIONAL),
    (b"-ERR", _ERR, _BLANK_REQUIRED),
    (b"RS+", _SUB, _BLANK_REQUIRED), (b"SUB", _SUB, _BLANK_REQUIRED),
    (b"RS-", _UNSUB, _BLANK_REQUIRED), (b"UNSUB", _UNSUB, _BLANK_REQUIRED),
    (b"RMSG", _LMSG, _BLANK_REQUIRED), (b"PUB", _PUB, _BLANK_REQUIRED),
    (b"HPUB", _HPUB, _BLANK_REQUIRED),
    (b"A+", _IGNORED, _BLANK_REQUIRED), (b"A-", _IGNORED, _BLANK_REQUIRED),
)
#: The same table by first byte, upper and lower case.
_OPS_BY_FIRST: dict[int, tuple[tuple[bytes, int, int], ...]] = {}
for _op in _OPS:
    for _first in {_op[0][0], _op[0][:1].lower()[0]}:
        _OPS_BY_FIRST[_first] = (*_OPS_BY_FIRST.get(_first, ()), _op)
del _op, _first

_INCOMPLETE = -1  # a prefix of some op word: wait for more (a whole line: unknown op)
_INVALID = -2

_ARGS = re.compile(rb"[^ \t\r\n]+")  # server-protocol arguments split on these
_CLIENT_ARGS = re.compile(rb"[^ \t]+")  # PUB/HPUB ones only on blanks (processPub)


class _ArgStartsWithLF:
    """An op word and blanks, then LF: in nats-server's parser the byte that ends the
    blanks starts the argument whatever it is, so the line goes on to the next LF."""


_ARG_STARTS_WITH_LF = _ArgStartsWithLF()


def _classify(line: bytes) -> tuple[int, int, int] | int:
    """``(kind, end of the op word, what may follow)``, or _INCOMPLETE / _INVALID."""
    if not line:
        return _INCOMPLETE
    ops = _OPS_BY_FIRST.get(line[0])
    if ops is None:
        return _INVALID
    head = line[:8].upper()
    for word, kind, follow in ops:
        if head.startswith(word):
            end = len(word)
            if follow == _BLANK_REQUIRED:
                if len(line) == end:
                    return _INCOMPLETE
                if line[end] not in (32, 9):
                    return _INVALID
            return kind, end, follow
    if any(len(head) < len(word) and word.startswith(head) for word, _, _ in ops):
        return _INCOMPLETE
    return _INVALID


def _size(token: bytes) -> int:
    """nats-server's ``parseSize``: 1 to 9 ASCII digits, else -1."""
    return int(token) if 0 < len(token) <= 9 and token.isdigit() else -1


class _Head:
    """An LMSG/HMSG control line whose payload has not been read yet."""

    __slots__ = ("hdr", "queues", "reply", "size", "subject")

    def __init__(self, subject: bytes, reply: bytes | None, queues: tuple[bytes, ...],
                 hdr: int, size: int) -> None:
        self.subject, self.reply, self.queues = subject, reply, queues
        self.hdr, self.size = hdr, size

    def event(self, body: bytes) -> LeafMsg:
        hdr = self.hdr
        if hdr:
            return LeafMsg(self.subject, self.reply, self.queues, body[:hdr], body[hdr:])
        return LeafMsg(self.subject, self.reply, self.queues, None, body)


class LeafCodec:
    """Parse a leafnode peer's byte stream.

    :param accepting: we accepted the connection, so the peer must send CONNECT first.
    :param max_control_line: nats-server's ``max_control_line`` (default 4096); a leaf
        connection may use 16 times as many argument bytes.
    :param max_payload: largest message (headers and payload) accepted, our own
        ``max_payload``, checked from the control line; None: no limit.

    Nothing outside this class changes its state.  It moves from waiting for CONNECT
    (accept role only) to open when a CONNECT is parsed, and to closed with the first
    :class:`ProtocolViolation`, after which it reads nothing.
    """

    def __init__(
        self,
        *,
        accepting: bool = False,
        max_control_line: int = DEFAULT_MAX_CONTROL_LINE,
        max_payload: int | None = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self.accepting = accepting
        self.max_payload = max_payload
        self._arg_limit = max_control_line * CONTROL_LINE_FACTOR
        #: Whether the peer takes HMSG (and may send HPUB): the first INFO's ``headers``
        #: when we solicited, the CONNECT's when we accepted.
        self.headers = False
        self.closed = False
        self._awaiting_connect = accepting
        self._got_info = False
        # An incomplete control line: its op word (or the prefix of one read so far),
        # what may follow the word, and the argument bytes so far.  Kept in parts so a
        # line trickling in costs linear time.
        self._word: bytes | None = None
        self._follow = -1  # -1 while the word is incomplete
        self._arg: list[bytes] = []
        self._arg_len = 0
        self._arg_cr = False  # a CR after the argument's first byte (see _argument)
        self._head: _Head | None = None  # a message whose payload is still arriving
        self._chunks: list[bytes] = []
        self._have = 0
        # The last plain LMSG line read and its subject, reply and size (None until one
        # was: an empty line is no LMSG).
        self._last_line: bytes | None = None
        self._last_args: tuple[bytes, bytes | None, int] = (b"", None, 0)

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes read from the peer; return the events they complete."""
        events: list[Event] = []
        if self.closed or not data:
            return events
        if self._head is not None:
            self._chunks.append(data)
            self._have += len(data)
            head = self._head
            need = head.size + 2
            if self._have < need:
                return events
            buf = b"".join(self._chunks)
            self._chunks = []
            self._head = None
            if buf[head.size:need] != CRLF:
                self._close(events, ERR_UNKNOWN_OP)
                return events
            events.append(head.event(buf[: head.size]))
            pos = need
        elif self._word is not None:
            if b"\n" not in data:
                self._grow(data, events)
                return events
            buf = self._partial_line() + data
            self._word = None
            pos = 0
        else:
            buf = data
            pos = 0
        self._parse(buf, pos, events)
        return events

    def _parse(self, buf: bytes, pos: int, events: list[Event]) -> None:
        end = len(buf)
        fast = not self._awaiting_connect
        while pos < end:
            if fast and buf.startswith(b"LMSG ", pos):
                after = self._plain_lmsg(buf, pos, end, events)
                if after:
                    pos = after
                    continue
            nl = buf.find(b"\n", pos)
            if nl < 0:
                self._stash(buf[pos:], events)
                return
            result = self._line(buf[pos:nl])
            if isinstance(result, _ArgStartsWithLF):
                nl = buf.find(b"\n", nl + 1)
                if nl < 0:
                    self._stash(buf[pos:], events)
                    return
                result = self._line(buf[pos:nl])
            pos = nl + 1
            if result is None or isinstance(result, _ArgStartsWithLF):
                continue
            if isinstance(result, _Head):
                stop = pos + result.size
                if stop + 2 > end:
                    self._head = result
                    rest = buf[pos:]
                    self._chunks = [rest]
                    self._have = len(rest)
                    return
                if buf[stop : stop + 2] != CRLF:
                    self._close(events, ERR_UNKNOWN_OP)
                    return
                events.append(result.event(buf[pos:stop]))
                pos = stop + 2
                continue
            events.append(result)
            if isinstance(result, ProtocolViolation):
                self._close(events, None, append=False)
                return

    def _plain_lmsg(self, buf: bytes, pos: int, end: int, events: list[Event]) -> int:
        """A whole ``LMSG subject [reply] size`` with single blanks and its payload at
        ``pos``, read without the general rules (what a hub sends for a message without
        headers or queue groups); the position after it, or 0 to leave the bytes to the
        general path, which gives the same message.  One that continues a run of the
        last event's subject and reply joins it (:class:`LeafMsgs`).  From a nats-server
        leaf to a local subscriber, 16-byte messages: 154k msgs/s through the general
        path, see docs/benchmarks.md for this path's figure.
        """
        nl = buf.find(b"\n", pos, pos + 5 + self._arg_limit)
        if nl < 0 or buf[nl - 1] != 13:
            return 0
        line = buf[pos + 5 : nl - 1]
        if line == self._last_line:
            subject, reply, size = self._last_args
        else:
            if b"\t" in line or b"\r" in line:
                return 0
            args = line.split(b" ")
            n = len(args)
            size_arg = args[-1]
            if not 2 <= n <= 3 or not all(args) or len(size_arg) > 9 or (
                not size_arg.isdigit()
            ):
                return 0
            subject, reply, size = args[0], args[1] if n == 3 else None, int(size_arg)
            if self.max_payload is not None and size > self.max_payload:
                return 0
            self._last_line, self._last_args = line, (subject, reply, size)
        start = nl + 1
        stop = start + size
        if stop + 2 > end or buf[stop : stop + 2] != CRLF:
            return 0
        payload = buf[start:stop]
        last = events[-1] if events else None
        if type(last) is LeafMsgs and last.subject == subject and last.reply == reply:
            last.payloads.append(payload)
        elif type(last) is LeafMsg and last.subject == subject and last.reply == reply and (
            last.headers is None and not last.queues
        ):
            events[-1] = LeafMsgs(subject, reply, [last.payload, payload])
        else:
            events.append(LeafMsg(subject, reply, (), None, payload))
        return stop + 2

    def _stash(self, tail: bytes, events: list[Event]) -> None:
        """Keep an incomplete control line, judged as far as it goes by the rules a whole
        one meets, so where a read is split never changes the events."""
        if self._awaiting_connect and tail[:1] not in (b"C", b"c"):
            self._close(events, ERR_AUTH)
            return
        op = _classify(tail)
        if op == _INVALID:
            self._close(events, ERR_UNKNOWN_OP)
            return
        if isinstance(op, int):  # a prefix of an op word: a few bytes
            self._word, self._follow = tail, -1
            return
        _, word_end, follow = op
        self._word, self._follow = tail[:word_end], follow
        self._arg, self._arg_len, self._arg_cr = [], 0, False
        self._grow(tail[word_end:], events)

    def _grow(self, data: bytes, events: list[Event]) -> None:
        """More of an incomplete control line (``data`` holds no LF).  What nats-server
        skips is not kept: the rest of a PING/PONG/+OK line, blanks after the op word."""
        assert self._word is not None
        if self._follow < 0:
            self._stash(self._word + data, events)
            return
        if self._follow == _ANY:
            return
        if not self._arg_len:
            data = data.lstrip(b" \t")
            if not data:
                return
        self._arg_cr = self._arg_cr or b"\r" in (data if self._arg_len else data[1:])
        self._arg.append(data)
        self._arg_len += len(data)
        if self._arg_len - self._arg_cr > self._arg_limit:
            self._close(events, ERR_CONTROL_LINE)

    def _partial_line(self) -> bytes:
        assert self._word is not None
        if self._follow in (_BLANK_OPTIONAL, _BLANK_REQUIRED):
            return self._word + b" " + b"".join(self._arg)
        return self._word

    def _line(self, line: bytes) -> Event | _Head | _ArgStartsWithLF | None:
        """One whole control line, without its LF."""
        if self._awaiting_connect and line[:1] not in (b"C", b"c"):
            return ProtocolViolation(ERR_AUTH)
        op = _classify(line)
        if isinstance(op, int):
            return ProtocolViolation(ERR_UNKNOWN_OP)
        kind, word_end, _ = op
        if kind == _PING:
            return Ping()
        if kind == _PONG:
            return Pong()
        if kind == _OK:
            return Ok()
        arg = _argument(line[word_end:])
        if not arg:
            return _ARG_STARTS_WITH_LF
        if len(arg) > self._arg_limit:
            return ProtocolViolation(ERR_CONTROL_LINE)
        if kind >= _LMSG:
            return None if kind == _IGNORED else self._message(kind, arg)
        if kind == _SUB:
            args = _ARGS.findall(arg)
            if len(args) == 1:
                return LeafSub(args[0])
            if len(args) == 3:
                return LeafSub(args[0], args[1], max(_size(args[2]), 1))
            return ProtocolViolation()
        if kind == _UNSUB:
            args = _ARGS.findall(arg)
            if len(args) == 1:
                return LeafUnsub(args[0])
            return LeafUnsub(args[0], args[1]) if len(args) == 2 else None
        if kind == _ERR:
            return RemoteError(_unquote(arg).decode("utf-8", "surrogateescape"))
        if kind == _CONNECT:
            try:
                options, lang = decode_connect(arg)
            except JsonError:
                return ProtocolViolation()
            if self.accepting:
                self._awaiting_connect = False
                self.headers = options.headers
            return Connect(options, lang)
        try:
            info = decode_info(arg)
        except JsonError:
            return ProtocolViolation()
        if not self.accepting and not self._got_info:
            self._got_info = True
            self.headers = info.headers
        return Info(info)

    def _message(self, kind: int, arg: bytes) -> _Head | ProtocolViolation:
        """LMSG/HMSG (and the client forms PUB/HPUB): the argument layouts of
        ``processLeafMsgArgs``, ``processLeafHeaderMsgArgs`` and ``processPub``."""
        with_header = kind in (_HMSG, _HPUB)
        if kind == _HPUB and not self.headers:
            return ProtocolViolation()
        if kind in (_PUB, _HPUB):
            args = _CLIENT_ARGS.findall(arg)
            if b"\r" in arg or b"\n" in arg:
                # nats-server would take the CR into a subject no one can subscribe to;
                # an event cannot carry such a subject, so this is the one place the
                # codec closes where nats-server does not (without -ERR, as it would
                # for a bad argument).
                return ProtocolViolation()
        else:
            args = _ARGS.findall(arg)
        n = len(args)
        fixed = 3 if with_header else 2  # subject [hdr] size
        reply: bytes | None = None
        queues: tuple[bytes, ...] = ()
        if n < fixed or (kind in (_PUB, _HPUB) and n > fixed + 1):
            return ProtocolViolation()
        if n == fixed + 1:
            reply = args[1]
        elif n > fixed:
            if args[1] == b"+":
                reply = args[2]
                queues = tuple(args[3 : n - fixed + 1])
            elif args[1] == b"|":
                queues = tuple(args[2 : n - fixed + 1])
            else:
                return ProtocolViolation()
        size = _size(args[-1])
        hdr = _size(args[-2]) if with_header else 0
        if hdr < 0 or size < 0 or hdr > size:
            return ProtocolViolation()
        if self.max_payload is not None and size > self.max_payload:
            return ProtocolViolation(ERR_MAX_PAYLOAD)
        return _Head(args[0], reply, queues, hdr, size)

    def _close(self, events: list[Event], err: str | None, *, append: bool = True) -> None:
        self.closed = True
        self._word = None
        self._arg = []
        self._head = None
        self._chunks = []
        if append:
            events.append(ProtocolViolation(err))


def _argument(rest: bytes) -> bytes:
    """The argument after an op word, as nats-server's parser cuts it: blanks skipped,
    and the last byte dropped when a CR follows the argument's first byte (its ``drop``
    flag, set by any CR, is only reset at the next op; normally the CR is the last)."""
    arg = rest.lstrip(b" \t")
    return arg[:-1] if b"\r" in arg[1:] else arg


def _unquote(arg: bytes) -> bytes:
    """``'text'`` → ``text`` (nats-server writes ``-ERR '%s'``)."""
    if len(arg) >= 2 and arg[:1] == b"'" and arg[-1:] == b"'":
        return arg[1:-1]
    return arg

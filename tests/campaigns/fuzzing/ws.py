"""Fuzz target: WebSocket framing as the door runs it (``websockets.server.ServerProtocol``).

The protocol object comes from ``WsConnection.__init__`` itself (with a stand-in door),
so it has the door's extensions and ``max_size``.  Three scenarios:

- ``open``: a valid upgrade request and the door's accept first, then fuzzed frames;
- ``coalesced``: request and frames in the same reads, accepted when the request event
  comes out, as ``WsConnection.data_received`` does with whatever TCP delivers;
- ``request``: a damaged upgrade request, then frames.

Contract checked: nothing raises out of ``receive_data``, ``events_received``,
``data_to_send``, ``accept``, ``send_response`` or ``receive_eof``; ``parser_exc`` is one
of the errors websockets reports as a protocol failure (not the catch-all it logs as
"parser failed"); no frame or message is larger than ``max_size``; at most one frame's
worth of bytes is held; split reads of an open connection give the same frames.
"""

from __future__ import annotations

import base64
import random
import re
import tracemalloc
import zlib
from types import SimpleNamespace

from websockets.exceptions import InvalidHandshake, PayloadTooBig
from websockets.exceptions import ProtocolError as WsProtocolError
from websockets.frames import Frame, Opcode
from websockets.http11 import MAX_LINE_LENGTH, Request
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.utils import apply_mask

from jetport.bridges.websocket.transport import WsConnection, accept, max_message_size

from .engine import ANOMALY, Case, Target, Violation, chunks_literal, literal
from .mutate import every_split, mutate_bytes, random_cuts, wants_every_split

#: What websockets itself reports as a broken peer (UnicodeDecodeError: bad UTF-8 in a
#: text frame or a close reason; EOFError: the stream ended mid-frame).
PROTOCOL_FAILURES = (WsProtocolError, PayloadTooBig, UnicodeDecodeError, EOFError)
#: websockets 14 wraps a request that does not parse in InvalidMessage; 13 (the lowest
#: version Jetport admits) leaves it as the parser's EOFError or ValueError.
HANDSHAKE_FAILURES = (InvalidHandshake, EOFError, ValueError)
KEY = base64.b64encode(b"0123456789abcdef").decode()
OFFERS = ("permessage-deflate", "permessage-deflate; client_max_window_bits",
          "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
          "permessage-deflate; server_max_window_bits=10", "x-webkit-deflate-frame")
TOKENS = (b"\x81", b"\x82", b"\x80", b"\x88", b"\x89", b"\x8a", b"\xc1", b"\x01", b"\x00",
          b"\xfe", b"\xff", b"\x7e\x00\x00", b"\x7f" + b"\xff" * 8, b"\x00\x00\xff\xff",
          b"\x03\xe8", b"\xed\xa0\x80")
DATA_OPCODES = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
_OPCODES = frozenset(op.value for op in Opcode)


def make_protocol(compression: bool, max_payload: int) -> ServerProtocol:
    """The ServerProtocol a WsConnection builds for a door with these settings."""
    door = SimpleNamespace(ws_options=SimpleNamespace(compression=compression),
                           hub=SimpleNamespace(options=SimpleNamespace(max_payload=max_payload)))
    return WsConnection(door).ws  # type: ignore[arg-type]


def upgrade_request(offer: str | None, path: str = "/") -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: localhost:8080", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13",
             "Sec-WebSocket-Protocol: mqtt"]
    if offer:
        lines.append(f"Sec-WebSocket-Extensions: {offer}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(rng: random.Random, opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
          mask: bool = True, length: int | None = None) -> bytes:
    """One client frame; ``length`` overrides the announced payload length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    m = 0x80 if mask else 0
    form = rng.random()
    if n < 126 and form < 0.9:
        head += bytes([m | n])
    elif n < 65536 and form < 0.95:
        head += bytes([m | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([m | 127]) + (n & (2**64 - 1)).to_bytes(8, "big")
    if not mask:
        return head + payload
    key = rng.randbytes(4)
    return head + key + apply_mask(payload, key)


def deflate(data: bytes) -> bytes:
    """A permessage-deflate message body: raw deflate without the final empty block."""
    c = zlib.compressobj(wbits=-15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    return out[:-4] if out.endswith(b"\x00\x00\xff\xff") else out


def _text(rng: random.Random) -> bytes:
    return rng.choice((b"hello", "h\u00e9llo \U0001f600".encode(), b"\xff\xfe", b"\xed\xa0\x80",
                       b"\xc3", b"", b"PUB foo 2\r\nhi\r\n", b"a" * 200))


def message(rng: random.Random, compressed: bool, max_size: int) -> bytes:
    """A data message: one frame or fragments, maybe compressed, maybe with a ping inside."""
    opcode = rng.choice((Opcode.TEXT, Opcode.BINARY))
    body = _text(rng) if opcode == Opcode.TEXT else rng.randbytes(rng.randint(0, 40))
    if rng.random() < 0.05 and max_size <= 1 << 16:
        body = b"\x00" * (max_size + rng.choice((-1, 0, 1, 1000)))  # at and over the limit
    rsv = 0
    if compressed and rng.random() < 0.7:
        body, rsv = deflate(body), 4
    parts = [body]
    if rng.random() < 0.3 and len(body) > 1:
        cut = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, rng.randint(1, 3))))
        parts = [body[a:b] for a, b in zip([0, *cut], [*cut, len(body)], strict=False)]
    out = b""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        out += frame(rng, opcode if i == 0 else Opcode.CONT, part, fin=last,
                     rsv=rsv if i == 0 else 0)
        if not last and rng.random() < 0.3:
            out += frame(rng, Opcode.PING, b"p")
    return out


def control(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        code = rng.choice((1000, 1001, 1002, 1005, 1006, 1015, 999, 2999, 3000, 4999, 5000))
        reason = rng.choice((b"", b"bye", b"\xff", b"r" * 123, b"r" * 124))
        payload = code.to_bytes(2, "big") + reason if rng.random() < 0.9 else b"\x03"
        return frame(rng, Opcode.CLOSE, payload)
    if kind in (1, 2):
        return frame(rng, rng.choice((Opcode.PING, Opcode.PONG)),
                     rng.randbytes(rng.choice((0, 4, 125, 126))), fin=rng.random() < 0.95)
    if kind == 3:
        return frame(rng, rng.choice((3, 4, 5, 6, 7, 0xB, 0xC, 0xF)), b"x")
    if kind == 4:
        return frame(rng, Opcode.BINARY, b"unmasked", mask=False)
    return frame(rng, rng.choice(DATA_OPCODES), b"x", rsv=rng.choice((1, 2, 4, 7)))


def oversized(rng: random.Random, max_size: int) -> bytes:
    """A frame header announcing a length at or over the limit, with a little payload."""
    n = rng.choice((max_size, max_size + 1, 2**63, 2**64 - 1, 65536))
    return frame(rng, rng.choice((Opcode.BINARY, Opcode.CONT, Opcode.PING)), b"abc", length=n)


def generate(rng: random.Random) -> Case:
    compression = rng.random() < 0.5
    max_payload = rng.choice((1 << 20, 16, 128, 1024))
    max_size = max_message_size(max_payload)
    offer = rng.choice(OFFERS[:3]) if compression and rng.random() < 0.8 else None
    compressed = offer is not None
    frames = []
    for _ in range(rng.randint(1, 5)):
        roll = rng.random()
        frames.append(message(rng, compressed, max_size) if roll < 0.6 else
                      control(rng) if roll < 0.9 else oversized(rng, max_size))
    data = b"".join(frames)
    if rng.random() < 0.4:
        data = mutate_bytes(rng, data, TOKENS)
    elif rng.random() < 0.05:
        data = rng.randbytes(rng.randint(0, 64))
    roll = rng.random()
    mode = "open" if roll < 0.8 else "coalesced" if roll < 0.92 else "request"
    request = upgrade_request(offer)
    if mode == "request":
        request = mutate_bytes(rng, request, (b"\r\n", b":", b" ", b"\r\n\r\n"))
    if mode != "open":
        data = request + data
    params = {"compression": compression, "max_payload": max_payload, "offer": offer,
              "eof": rng.random() < 0.2, "route": mode == "open" or rng.random() < 0.8,
              "every_split": mode == "open" and wants_every_split(rng, len(data), 0.03)}
    cuts = () if params["every_split"] else random_cuts(rng, len(data))
    return Case(data, cuts, params, mode)


def handshake(ws: ServerProtocol, request: Request, route: bool = True) -> int:
    """Answer the upgrade the way WsConnection._handshake does: 404 without a route,
    else accept, and 400 when websockets refuses the request; when bad frames in the
    same read already ended the stream, no response (the door closes the socket)."""
    if not route:
        response = ws.reject(404, "Not Found\n")
    else:
        response = accept(ws, request)
        if response.status_code != 101:
            response = ws.reject(400, "Bad Request\n")
    if ws.eof_sent:
        return 0
    ws.send_response(response)
    return response.status_code


class Session:
    """One connection's worth of protocol calls, checking each step."""

    def __init__(self, case: Case) -> None:
        self.ws = make_protocol(case.params["compression"], case.params["max_payload"])
        self.route = case.params.get("route", True)
        self.max_size = max_message_size(case.params["max_payload"])
        self.frames: list[Frame] = []
        self.sent: list[bytes] = []
        self.message_size = 0

    def feed(self, data: bytes) -> None:
        self.ws.receive_data(data)
        self.drain()

    def drain(self) -> None:
        for ev in self.ws.events_received():
            if isinstance(ev, Request):
                handshake(self.ws, ev, self.route)
            else:
                self.check_frame(ev)
        self.sent += self.ws.data_to_send()
        held = len(self.ws.reader.buffer)
        # One frame at most; while the request is read, one header line at most.
        cap = self.max_size + 14 if self.ws.state is not State.CONNECTING else \
            max(self.max_size + 14, MAX_LINE_LENGTH + 2)
        if held > cap:
            raise Violation(f"holds {held} bytes, more than one frame of {self.max_size}")

    def check_frame(self, ev: Frame) -> None:
        self.frames.append(ev)
        if ev.opcode in DATA_OPCODES:
            self.message_size = (self.message_size if ev.opcode == Opcode.CONT else 0) \
                + len(ev.data)
            if self.message_size > self.max_size:
                raise Violation(f"a message of {self.message_size} bytes passed max_size "
                                f"{self.max_size}")

    def outcome(self) -> tuple[list[Frame], str, bytes]:
        exc = self.ws.parser_exc
        return self.frames, f"{type(exc).__name__}: {exc}" if exc else "", b"".join(self.sent)


def play(case: Case, chunks: list[bytes]) -> Session:
    """Run the case's scenario over ``chunks``; check the errors websockets kept."""
    s = Session(case)
    if case.mode == "open":
        s.feed(upgrade_request(case.params["offer"]))
        if not s.sent or not s.sent[0].startswith(b"HTTP/1.1 101"):
            raise Violation(f"a valid upgrade was not accepted: {s.sent[:1]!r}")
        s.sent = []  # the response has a Date header: compare only what follows
    for chunk in chunks:
        s.feed(chunk)
    if case.params["eof"]:
        s.ws.receive_eof()
        s.drain()
    exc = s.ws.parser_exc
    if exc is not None and not isinstance(exc, PROTOCOL_FAILURES):
        raise Violation(f"parser failed with {type(exc).__name__}: {exc}") from exc
    hexc = s.ws.handshake_exc
    if hexc is not None and not isinstance(hexc, HANDSHAKE_FAILURES):
        raise Violation(f"handshake failed with {type(hexc).__name__}: {hexc}") from hexc
    if exc is not None and len(s.ws.reader.buffer):
        raise Violation(f"kept {len(s.ws.reader.buffer)} bytes after {type(exc).__name__}")
    return s


def run(case: Case) -> list[str]:
    """Play the case's scenario; the parser's and handshake's errors are its rejections.
    An open connection must give the same frames however its bytes were cut."""
    assert isinstance(case.data, bytes)
    chunks = case.chunks()
    s = play(case, chunks)
    kinds = []
    exc = s.ws.parser_exc
    if exc is not None:
        kinds.append(_kind(exc))
    if s.ws.handshake_exc is not None:
        kinds.append(f"handshake {type(s.ws.handshake_exc).__name__}")
    if case.mode == "open":
        splits = every_split(case.data) if case.params.get("every_split") else \
            [chunks] if len(chunks) > 1 else []
        whole = s if len(chunks) == 1 else play(case, [case.data])
        for reads in splits:
            if (s if reads is chunks else play(case, reads)).outcome() != whole.outcome():
                raise Violation(f"reads cut at {len(reads[0])} give other frames than one read")
    if case.mode == "coalesced":
        first = next((c for c in s.sent if c), b"")
        if s.ws.handshake_exc is None and first and not first.startswith(b"HTTP/"):
            what = Opcode(first[0] & 0x0F).name if first[0] & 0x0F in _OPCODES else "bytes"
            kinds.append(f"{ANOMALY}a {what} frame is sent before the handshake response")
    return kinds


def _kind(exc: BaseException) -> str:
    """The rejection an exception stands for, without its sizes and positions."""
    if isinstance(exc, UnicodeDecodeError):
        return f"UnicodeDecodeError: {exc.reason}"
    if isinstance(exc, PayloadTooBig):
        return "PayloadTooBig" + (" (fragmented message)" if "after reading" in str(exc) else "")
    return f"{type(exc).__name__}: " + re.sub(r"\d+", "N", str(exc))[:80]


def reproducer(case: Case) -> str:
    """The case as a snippet (the protocol comes from WsConnection via this module)."""
    p = case.params
    setup = "" if case.mode != "open" else (
        f"ws.receive_data({literal(upgrade_request(p['offer']))})\n"
        "handshake(ws, ws.events_received()[0])\nprint(ws.data_to_send())\n")
    return ("from campaigns.fuzzing.ws import handshake, make_protocol  # tests/ on sys.path\n"
            "from websockets.http11 import Request\n"
            f"ws = make_protocol(compression={p['compression']}, max_payload={p['max_payload']})\n"
            f"{setup}"
            + ("# also compare with each two-read cut of the data (every_split)\n"
               if p.get("every_split") else "")
            + f"for data in {chunks_literal(case)}:\n"
            "    ws.receive_data(data)\n"
            "    for ev in ws.events_received():\n"
            "        if isinstance(ev, Request):\n"
            f"            handshake(ws, ev, route={p['route']})\n"
            "        print(ev)\n"
            "    print(ws.data_to_send())\n"
            + ("ws.receive_eof()\n" if p["eof"] else "")
            + "print(repr(ws.parser_exc))")


def _opened(compression: bool, max_payload: int) -> ServerProtocol:
    ws = make_protocol(compression, max_payload)
    ws.receive_data(upgrade_request(OFFERS[2] if compression else None))
    handshake(ws, ws.events_received()[0])
    ws.data_to_send()
    return ws


def limit_checks() -> list[str]:
    """Over-long length prefixes and decompression bombs end in PayloadTooBig from the
    header (or within ``max_size`` of inflated data), with nothing buffered."""
    problems: list[str] = []
    rng = random.Random(0)
    for max_payload in (1 << 20, 1024):
        limit = max_message_size(max_payload)
        for n in (limit + 1, 2**63):
            ws = _opened(False, max_payload)
            ws.receive_data(frame(rng, Opcode.BINARY, b"", length=n))
            if not isinstance(ws.parser_exc, PayloadTooBig) or len(ws.reader.buffer):
                problems.append(f"max_payload {max_payload}: a {n}-byte frame header gave "
                                f"{ws.parser_exc!r}, {len(ws.reader.buffer)} bytes held")
        ws = _opened(False, max_payload)
        half = b"x" * (limit // 2 + 1)
        ws.receive_data(frame(rng, Opcode.BINARY, half, fin=False)
                        + frame(rng, Opcode.CONT, half))
        if not isinstance(ws.parser_exc, PayloadTooBig):
            problems.append(f"max_payload {max_payload}: fragments over {limit} bytes gave "
                            f"{ws.parser_exc!r}")
    ws = _opened(True, 1024)
    limit = max_message_size(1024)
    bomb = frame(rng, Opcode.BINARY, deflate(b"\x00" * (64 << 20)), rsv=4)
    tracemalloc.start()
    try:
        ws.receive_data(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if not isinstance(ws.parser_exc, PayloadTooBig) or peak > 16 * limit + len(bomb) * 4:
        problems.append(f"a 64 MiB deflate bomb gave {ws.parser_exc!r} with a peak of "
                        f"{peak} bytes (max_size {limit})")
    return problems


TARGET = Target("ws", generate, run, reproducer, limit_checks)

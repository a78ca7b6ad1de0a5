"""Fuzz target: the MQTT 3.1.1 and 5 codec (``MqttCodec.receive_data``).

Inputs are packet streams written by the codec's own encoder from random (sometimes
out-of-range) fields, then damaged: bytes flipped, remaining lengths off by one or
absurd, header nibbles changed, truncated.  Contract checked on every input: no
exception; only packets and :class:`ProtocolError` come out, a ProtocolError (with an
MQTT error reason code) last and nothing after it; the codec never holds more than
``max_packet_size`` bytes; and split reads decode exactly like one read.
"""

from __future__ import annotations

import random
from typing import Any

from jetport.bridges.mqtt.codec import MqttCodec
from jetport.bridges.mqtt.encoder import encode
from jetport.bridges.mqtt.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    ProtocolError,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    SubscriptionRequest,
    UnsubAck,
    Unsubscribe,
    Will,
)
from jetport.bridges.mqtt.wire import write_varint

from .engine import EVERY_SPLIT, Case, Target, Violation, chunks_literal, split_loop
from .mutate import every_split, mutate_bytes, random_cuts, wants_every_split

PACKET_TYPES = (Connect, ConnAck, Publish, PubAck, PubRec, PubRel, PubComp, Subscribe, SubAck,
                Unsubscribe, UnsubAck, PingReq, PingResp, Disconnect, Auth)
TOPICS = ("a/b", "sensors/1/temp", "a", "/", "a//b", "$SYS/x", "é/ü", "", "a/+", "#", "+/#",
          "$share/g/a/b", "\x00", "a\ufffeb", "x" * 300)
TOKENS = (b"\x00", b"\x00\x00", b"\xff\xff\xff\x7f", b"\x80\x80\x80\x80\x01", b"\x10", b"\x30",
          b"\x82", b"\xc0\x00", b"\xe0\x00", b"\x00\x04MQTT", b"\x05", b"\x04", b"\x26")
#: Property names and how to make a value of each (MQTT 5).
PROPERTY_VALUES: dict[str, tuple[Any, ...]] = {
    "payload_format_indicator": (0, 1, 2), "message_expiry_interval": (0, 60, 2**32 - 1),
    "content_type": ("text/plain", ""), "response_topic": ("r/1", "", "r/#"),
    "correlation_data": (b"", b"\x00id"), "subscription_identifier": (1, 0, 268435455),
    "session_expiry_interval": (0, 3600), "assigned_client_identifier": ("c",),
    "server_keep_alive": (0, 30), "authentication_method": ("SCRAM", ""),
    "authentication_data": (b"x",), "request_problem_information": (0, 1, 2),
    "will_delay_interval": (0, 5), "request_response_information": (0, 1, 7),
    "response_information": ("r",), "server_reference": ("s",), "reason_string": ("why", ""),
    "receive_maximum": (1, 0, 65535), "topic_alias_maximum": (0, 10),
    "topic_alias": (1, 2, 0, 11, 65535), "maximum_qos": (0, 1, 2),
    "retain_available": (0, 1), "user_properties": ([("k", "v")], [("", ""), ("a", "\x00")]),
    "maximum_packet_size": (1, 0, 1 << 20), "wildcard_subscription_available": (0, 1),
    "subscription_identifier_available": (0, 1), "shared_subscription_available": (1, 3),
}
#: The reason codes the codec's docstring promises for a peer's errors.
DOCUMENTED_CODES = frozenset({0x81, 0x82, 0x84, 0x85, 0x86, 0x94, 0x95})


def properties(rng: random.Random, level: int) -> dict[str, Any]:
    if level != 5 or rng.random() < 0.5:
        return {}
    names = rng.sample(sorted(PROPERTY_VALUES), rng.randint(1, 3))
    props: dict[str, Any] = {}
    for name in names:
        value = rng.choice(PROPERTY_VALUES[name])
        props[name] = [value] if name == "subscription_identifier" and rng.random() < 0.5 \
            else value
    return props


def _topic(rng: random.Random) -> str:
    return rng.choice(TOPICS[:7]) if rng.random() < 0.8 else rng.choice(TOPICS)


def _pid(rng: random.Random) -> int:
    return rng.choice((1, 2, 10, 65535, 0)) if rng.random() < 0.3 else rng.randint(1, 500)


def connect(rng: random.Random, level: int) -> Connect:
    will = None
    if rng.random() < 0.3:
        will = Will(_topic(rng), rng.randbytes(rng.randint(0, 8)), rng.choice((0, 1, 2, 3)),
                    rng.random() < 0.3, properties(rng, level))
    return Connect(
        protocol_level=level if rng.random() < 0.95 else rng.choice((3, 6, 0)),
        client_id=rng.choice(("c", "", "client-1", "\x00", "x" * 100)),
        clean_start=rng.random() < 0.7, keepalive=rng.choice((0, 60, 65535)),
        username=rng.choice((None, None, "u", "")), password=rng.choice((None, None, b"p")),
        will=will, properties=properties(rng, level),
        protocol_name="MQTT" if rng.random() < 0.95 else rng.choice(("MQIsdp", "", "mqtt")),
    )


def publish(rng: random.Random, level: int) -> Publish:
    qos = rng.choice((0, 0, 1, 2, 3)) if rng.random() < 0.1 else rng.choice((0, 1, 2))
    return Publish(_topic(rng), rng.randbytes(rng.randint(0, 20)), qos, rng.random() < 0.2,
                   rng.random() < 0.1, _pid(rng) if qos else None, properties(rng, level))


def subscribe(rng: random.Random, level: int) -> Subscribe:
    subs = [SubscriptionRequest(_topic(rng), rng.choice((0, 1, 2, 3)), rng.random() < 0.1,
                                rng.random() < 0.1, rng.choice((0, 0, 1, 2, 3)))
            for _ in range(rng.choice((0, 1, 1, 2, 3)))]
    return Subscribe(_pid(rng), subs, properties(rng, level))


def client_packet(rng: random.Random, level: int) -> Packet:
    """Something a client sends after its CONNECT."""
    kind = rng.randrange(9)
    ack_code = rng.choice((0, 0, 0x10, 0x80, 0x92, 0x07))
    if kind <= 2:
        return publish(rng, level)
    if kind == 3:
        cls = rng.choice((PubAck, PubRec, PubRel, PubComp))
        return cls(_pid(rng), ack_code if level == 5 else 0, properties(rng, level))
    if kind == 4:
        return subscribe(rng, level)
    if kind == 5:
        return Unsubscribe(_pid(rng), [_topic(rng) for _ in range(rng.choice((0, 1, 2)))],
                           properties(rng, level))
    if kind == 6:
        return PingReq()
    if kind == 7:
        return Disconnect(rng.choice((0, 0, 4, 0x80, 0x05)), properties(rng, level))
    return Auth(rng.choice((0, 0x18, 0x19, 0x01)), properties(rng, level))


def server_packet(rng: random.Random, level: int) -> Packet:
    """Something a server sends (decoded by a codec playing the client)."""
    kind = rng.randrange(7)
    if kind == 0:
        return ConnAck(rng.random() < 0.5, rng.choice((0, 0x80, 0x86, 0x05)),
                       properties(rng, level))
    if kind == 1:
        return SubAck(_pid(rng), [rng.choice((0, 1, 2, 0x80, 0x03))
                                  for _ in range(rng.choice((0, 1, 2)))], properties(rng, level))
    if kind == 2:
        codes = [rng.choice((0, 0x11, 0x80, 0x05)) for _ in range(rng.choice((0, 1, 2)))]
        return UnsubAck(_pid(rng), codes if level == 5 else [], properties(rng, level))
    if kind == 3:
        return PingResp()
    return client_packet(rng, level)


def _encode(packet: Packet, level: int) -> bytes:
    """The packet's bytes, or a PINGREQ when a field cannot be encoded at all."""
    try:
        return encode(packet, level)
    except (ValueError, OverflowError, KeyError, TypeError):
        return b"\xc0\x00"


def skew_length(rng: random.Random, data: bytes) -> bytes:
    """Rewrite the first packet's remaining length: off by one, oversized, over 4 bytes."""
    if len(data) < 2:
        return data
    i, length = 1, 0
    shift = 0
    while i < len(data) and i < 5:
        length |= (data[i] & 0x7F) << shift
        shift += 7
        i += 1
        if data[i - 1] < 0x80:
            break
    roll = rng.random()
    if roll < 0.1:
        return data[:1] + b"\x80\x80\x80\x80\x01" + data[i:]  # five bytes: malformed
    new = length + rng.choice((-1, 1, 2)) if roll < 0.6 else \
        rng.choice((268435455, 1 << 20, (1 << 20) + 1, 65536, 128, 16384))
    return data[:1] + write_varint(max(new, 0)) + data[i:]


def generate(rng: random.Random) -> Case:
    """A CONNECT (usually) and a few packets at level 4 or 5, damaged half the time."""
    level = rng.choice((4, 5))
    params: dict[str, Any] = {}
    role = rng.random()
    packets: list[Packet] = []
    if role < 0.15:
        params = {"client": True, "level": level}
        make = server_packet
    else:
        make = client_packet
        if role < 0.3:
            params["level"] = level
        else:
            packets.append(connect(rng, level))
    if rng.random() < 0.5:
        params["max_packet_size"] = rng.choice((2, 16, 64, 256, 1024))
    if rng.random() < 0.3:
        params["topic_alias_maximum"] = rng.choice((1, 2, 10))
    packets += [make(rng, level) for _ in range(rng.randint(0, 5))]
    data = b"".join(_encode(p, level) for p in packets)
    roll = rng.random()
    if roll < 0.35:
        data = mutate_bytes(rng, data, TOKENS)
    elif roll < 0.45:
        data = skew_length(rng, data)
    elif roll < 0.5:
        b0 = rng.randrange(256)
        data = bytes([b0]) + data[1:] if data else bytes([b0])
    elif roll < 0.55:
        data = rng.randbytes(rng.randint(0, 64))
    if wants_every_split(rng, len(data)):
        return Case(data, (), params, EVERY_SPLIT)
    return Case(data, random_cuts(rng, len(data)), params)


def feed(params: dict[str, Any], chunks: list[bytes]) -> list[Any]:
    """Feed the reads to a fresh codec, checking every result; return them all."""
    codec = MqttCodec(**params)
    out: list[Any] = []
    failed = False
    for chunk in [*chunks, b"\xc0\x00"]:
        got = codec.receive_data(chunk)
        if failed and got:
            raise Violation(f"results after a ProtocolError: {got[:3]!r}")
        for i, item in enumerate(got):
            if isinstance(item, ProtocolError):
                failed = True
                if i != len(got) - 1:
                    raise Violation(f"ProtocolError is not the last result: {got[i:i + 2]!r}")
                if not isinstance(item.reason_code, int) or item.reason_code < 0x80:
                    raise Violation(f"ProtocolError without an error reason code: {item!r}")
            elif not isinstance(item, PACKET_TYPES):
                raise Violation(f"not a packet: {item!r}")
        held = len(getattr(codec, "_buf", b""))
        if held > max(codec.max_packet_size, 5):
            raise Violation(f"holds {held} bytes (max_packet_size {codec.max_packet_size})")
        out += got
    return out


def run(case: Case) -> list[str]:
    """Feed the case as cut and whole (and in every pair of reads when asked); the
    ProtocolErrors' reason codes are its rejections."""
    assert isinstance(case.data, bytes)
    chunks = case.chunks()
    out = feed(case.params, chunks)
    splits = every_split(case.data) if case.mode == EVERY_SPLIT else \
        [chunks] if len(chunks) > 1 else []
    whole = out if len(chunks) == 1 else feed(case.params, [case.data])
    for reads in splits:
        split = out if reads is chunks else feed(case.params, reads)
        if split != whole:
            raise Violation(f"split reads decode differently: {whole[-2:]!r} vs {split[-2:]!r}")
    kinds = []
    for item in out:
        if isinstance(item, ProtocolError):
            code = item.reason_code
            undocumented = "" if code in DOCUMENTED_CODES else " (undocumented)"
            kinds.append(f"0x{code:02x}{undocumented}")
    return kinds


def reproducer(case: Case) -> str:
    """The case as a snippet that needs nothing but Jetport."""
    args = ", ".join(f"{k}={v!r}" for k, v in case.params.items())
    if case.mode == EVERY_SPLIT:
        return ("from jetport.bridges.mqtt.codec import MqttCodec\n"
                + split_loop(case, f"MqttCodec({args})"))
    return ("from jetport.bridges.mqtt.codec import MqttCodec\n"
            f"codec = MqttCodec({args})\n"
            f"for data in {chunks_literal(case)}:\n"
            "    print(codec.receive_data(data))")


CONNECT4 = bytes.fromhex("100d00044d5154540402003c000163")


def limit_checks() -> list[str]:
    """A length prefix over ``max_packet_size`` is refused (0x95) from the fixed header
    alone, and a remaining length longer than four bytes is malformed (0x81)."""
    problems: list[str] = []
    for cap in (None, 64):
        kw = {} if cap is None else {"max_packet_size": cap}
        limit = MqttCodec(**kw).max_packet_size
        for header in (b"\x30" + write_varint(limit - 1), b"\x30" + write_varint(268435455)):
            got = MqttCodec(**kw).receive_data(CONNECT4 + header)
            if len(got) != 2 or not isinstance(got[1], ProtocolError) or \
                    got[1].reason_code != 0x95:
                problems.append(f"{kw}: header {header!r} announcing more than {limit} bytes "
                                f"gave {got[1:]!r}, not 0x95 at once")
        body = b"\x00\x01t" + b"x" * (limit - 3 - len(write_varint(limit - 2)) - 1)
        exact = b"\x30" + write_varint(len(body)) + body
        codec = MqttCodec(**kw)
        got = codec.receive_data(CONNECT4)
        for i in range(0, len(exact), 997):
            got += codec.receive_data(exact[i:i + 997])
            if len(getattr(codec, "_buf", b"")) > limit:
                problems.append(f"{kw}: holds more than {limit} bytes while reading a packet")
                break
        if len(exact) != limit or [type(p) for p in got] != [Connect, Publish]:
            problems.append(f"{kw}: a packet of exactly {limit} bytes gave {got[-1:]!r}")
    got = MqttCodec().receive_data(CONNECT4 + b"\x30\x80\x80\x80\x80\x01")
    if not got or not isinstance(got[-1], ProtocolError) or got[-1].reason_code != 0x81:
        problems.append(f"five-byte remaining length gave {got[-1:]!r}, not 0x81")
    return problems


TARGET = Target("mqtt", generate, run, reproducer, limit_checks)

"""MQTT packets as nats-server's protocol trace (``-V``, ``-DV``) shows them.

A traced line is ``<peer> - mid:<n> - "<client id>" - <<- [CONNECT clientID=... ]`` for
what the client sent and ``->>`` for what the door sent, with nats-server's words for
each packet (``[PUBLISH a/b dup=false QoS=1 retain=false size=5 pi=1]``, ``[SUBACK
pi=1]``, ``[PINGREQ]`` ...) and, after an incoming PUBLISH, its payload as the NATS door
traces one (``MSG_PAYLOAD: ["..."]``, cut at ``max_traced_msg_len``).  MQTT 5 adds what
nats-server, speaking 3.1.1, has no words for: reason codes (``rc=135``), topic aliases
(``alias=2``), SUBACK codes and AUTH packets (method only: never passwords or SCRAM
data).  Over WebSocket the connection is ``mid_ws:<n>``, as in nats-server.
"""

from __future__ import annotations

from jetport.bridges.mqtt.packets import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    Packet,
    PingReq,
    PingResp,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
)
from jetport.bridges.mqtt.topics import TopicError, filter_subjects, split_shared
from jetport.bridges.nats.codec import go_quote, payload_trace

__all__ = ["go_duration", "packet_lines", "prefix"]


def prefix(ip: str, port: int, mid: int, client_id: str | None, websocket: bool) -> str:
    """Who a traced or logged line is about, as nats-server names an MQTT client."""
    kind = "mid_ws" if websocket else "mid"
    who = f"{ip}:{port} - {kind}:{mid}"
    if client_id is None:
        return who
    return f'{who} - "{go_quote(client_id.encode())}"'


def go_duration(seconds: float) -> str:
    """Seconds as Go's ``time.Duration`` prints them: ``30s``, ``1.5s``, ``1m0s``,
    ``1h1m1s``."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{text}"
    if minutes:
        return f"{int(minutes)}m{text}"
    return text


def _filter(topic_filter: str) -> str:
    """A filter and the subject it subscribes, nats-server's ``a/# (a.>)``."""
    try:
        subject = filter_subjects(split_shared(topic_filter)[1])[0]
    except (TopicError, IndexError):
        subject = "?"
    return f"{topic_filter} ({subject})"


def _rc(code: int) -> str:
    return f" rc={code}" if code else ""


def _publish(p: Publish) -> str:
    topic = p.topic
    alias = p.properties.get("topic_alias") if p.properties else None
    pid = f" pi={p.packet_id}" if p.packet_id else ""
    extra = f" alias={alias}" if alias else ""
    return (f"PUBLISH {topic} dup={str(p.dup).lower()} QoS={p.qos} "
            f"retain={str(p.retain).lower()} size={len(p.payload)}{pid}{extra}")


def _connect(c: Connect) -> str:
    """nats-server's words, its ``keepAlive`` included: the read deadline it derives,
    1.5 times the client's keep-alive."""
    text = f"CONNECT clientID={c.client_id}"
    if c.keepalive:
        text += f" keepAlive={go_duration(c.keepalive * 1.5)}"
    if c.will is not None:
        w = c.will
        text += f" will=(topic={w.topic} QoS={w.qos} retain={str(w.retain).lower()})"
    if c.clean_start:
        text += " clean"
    if c.username:
        text += f" username={c.username}"
    if c.password:
        text += " password=****"
    if c.protocol_level == 5:
        text += " proto=5"
        method = c.properties.get("authentication_method")
        if method:
            text += f" authMethod={method}"
    return text


def describe(packet: Packet) -> str:
    """One packet, without its payload, in nats-server's trace words."""
    if isinstance(packet, Publish):
        return _publish(packet)
    if isinstance(packet, PubAck | PubRec | PubRel | PubComp):
        name = type(packet).__name__.upper()
        return f"{name} pi={packet.packet_id}{_rc(packet.reason_code)}"
    if isinstance(packet, Subscribe):
        subs = ", ".join(f"{_filter(r.topic_filter)} QoS={r.qos}" for r in packet.subscriptions)
        return f"SUBSCRIBE [{subs}] pi={packet.packet_id}"
    if isinstance(packet, SubAck):
        codes = ",".join(str(c) for c in packet.reason_codes)
        return f"SUBACK pi={packet.packet_id} rc=[{codes}]"
    if isinstance(packet, Unsubscribe):
        filters = ", ".join(_filter(f) for f in packet.topic_filters)
        return f"UNSUBSCRIBE [{filters}] pi={packet.packet_id}"
    if isinstance(packet, UnsubAck):
        return f"UNSUBACK pi={packet.packet_id}"
    if isinstance(packet, Connect):
        return _connect(packet)
    if isinstance(packet, ConnAck):
        text = f"CONNACK sp={str(packet.session_present).lower()} rc={packet.reason_code}"
        keepalive = packet.properties.get("server_keep_alive")
        if keepalive is not None:
            text += f" serverKeepAlive={go_duration(keepalive)}"
        return text
    if isinstance(packet, PingReq):
        return "PINGREQ"
    if isinstance(packet, PingResp):
        return "PINGRESP"
    if isinstance(packet, Disconnect):
        return f"DISCONNECT{_rc(packet.reason_code)}"
    if isinstance(packet, Auth):
        method = packet.properties.get("authentication_method", "")
        return f"AUTH rc={packet.reason_code} method={method}"
    return type(packet).__name__.upper()


def packet_lines(packet: Packet, incoming: bool, max_len: int = 0) -> list[str]:
    """The trace lines of one packet: ``<<- [...]`` in, ``->> [...]`` out, and an
    incoming PUBLISH's payload."""
    arrow = "<<-" if incoming else "->>"
    lines = [f"{arrow} [{describe(packet)}]"]
    if incoming and isinstance(packet, Publish):
        lines.append(f"{arrow} {payload_trace(packet.payload, max_len)}")
    return lines

"""nats-server's ``mqtt {}`` block: the MQTT door's listener and its settings."""

from __future__ import annotations

from dataclasses import dataclass

from jetport.core.config.keys import TOP_LEVEL_KEYS, Entry, KeyTable, listen_address
from jetport.core.config.options import Options

#: The MQTT port of the embedded default (``jetport serve`` with no arguments).
EMBEDDED_MQTT_PORT = 1883
DEFAULT_ACK_WAIT = 30.0
DEFAULT_MAX_ACK_PENDING = 1024
#: The Receive Maximum announced to MQTT 5 clients by default (the protocol's largest).
DEFAULT_RECEIVE_MAXIMUM = 65535

MQTT_KEYS = KeyTable("mqtt.")


@dataclass
class MqttOptions:
    """The MQTT door's settings; ``port`` 0 means the door is off, -1 a free port."""

    host: str = ""  # "": the server's host
    port: int = 0
    ack_wait: float = DEFAULT_ACK_WAIT  # seconds before a QoS 1/2 message is sent again
    max_ack_pending: int = DEFAULT_MAX_ACK_PENDING  # unacknowledged messages per session
    no_auth_user: str = ""
    username: str = ""
    password: str = ""
    token: str = ""
    auth_timeout: float = 0.0  # 0: the server's
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""
    tls_verify: bool = False
    tls_map: bool = False
    tls_timeout: float = 0.0
    tls_min_version: str = ""
    reject_qos2_publish: bool = False  # a QoS 2 PUBLISH closes the connection
    #: The JetStream domain holding sessions and retained messages ("": this server's
    #: own); with a leaf node's cluster, every hub linked to it shares them.
    js_domain: str = ""
    stream_replicas: int = 0  # copies of the MQTT streams (0: 1, or 3 in a domain)
    downgrade_qos2_subscribe: bool = False  # QoS 2 subscriptions are granted QoS 1
    # Jetport's own keys (nats-server has no MQTT 5):
    #: QoS 1/2 PUBLISH packets an MQTT 5 client may have unacknowledged (Receive Maximum).
    receive_maximum: int = DEFAULT_RECEIVE_MAXIMUM
    #: Largest keep-alive a client may ask for, in seconds (Server Keep Alive); 0: any.
    max_keep_alive: int = 0
    #: Give repeated topics of outgoing PUBLISH packets a topic alias (MQTT 5 clients that
    #: announce a Topic Alias Maximum).
    assign_topic_aliases: bool = True


def mqtt_options(opts: Options) -> MqttOptions:
    if opts.mqtt is None:
        opts.mqtt = MqttOptions()
    return opts.mqtt


@TOP_LEVEL_KEYS.key("mqtt")
def _mqtt_key(opts: Options, entry: Entry) -> None:
    mqtt_options(opts)
    MQTT_KEYS.apply(opts, entry.block())


@MQTT_KEYS.key("listen")
def _mqtt_listen(opts: Options, entry: Entry) -> None:
    host, port = listen_address(entry)
    m = mqtt_options(opts)
    if host:
        m.host = host
    m.port = port


@MQTT_KEYS.key("host", "net")
def _mqtt_host(opts: Options, entry: Entry) -> None:
    mqtt_options(opts).host = entry.string()


@MQTT_KEYS.key("port")
def _mqtt_port(opts: Options, entry: Entry) -> None:
    mqtt_options(opts).port = entry.integer()


@MQTT_KEYS.key("ack_wait", "ackwait")
def _mqtt_ack_wait(opts: Options, entry: Entry) -> None:
    mqtt_options(opts).ack_wait = entry.seconds()


@MQTT_KEYS.key("max_ack_pending", "max_pending", "max_inflight")
def _mqtt_max_ack_pending(opts: Options, entry: Entry) -> None:
    value = entry.integer()
    if not 0 <= value <= 0xFFFF:
        raise entry.error(f"max_ack_pending {value} is out of range (0 to 65535)")
    mqtt_options(opts).max_ack_pending = value


@MQTT_KEYS.key("no_auth_user")
def _mqtt_no_auth_user(opts: Options, entry: Entry) -> None:
    mqtt_options(opts).no_auth_user = entry.string()


def embedded(opts: Options) -> None:
    """The embedded default opens the MQTT door on its standard port."""
    mqtt_options(opts).port = EMBEDDED_MQTT_PORT


@MQTT_KEYS.key("tls")
def _mqtt_tls(opts: Options, entry: Entry) -> None:
    """The MQTT listener's own TLS (cert_file, key_file, ca_file, verify,
    verify_and_map, timeout, min_version), as in nats-server's mqtt block."""
    m = mqtt_options(opts)
    block = entry.block()
    for key, value in block.items():
        sub = Entry(key, value, block.where(key))
        name = key.lower()
        if name == "cert_file":
            m.tls_cert = sub.string()
        elif name == "key_file":
            m.tls_key = sub.string()
        elif name == "ca_file":
            m.tls_ca = sub.string()
        elif name == "verify":
            m.tls_verify = sub.boolean()
        elif name == "verify_and_map":
            m.tls_map = sub.boolean()
            m.tls_verify = m.tls_verify or m.tls_map
        elif name == "timeout":
            m.tls_timeout = sub.seconds()
        elif name == "min_version":
            from jetport.core.tls import min_tls_version

            try:
                min_tls_version(value)
            except ValueError as exc:
                raise sub.error(f"error parsing tls config: {exc}") from exc
            m.tls_min_version = value
        else:
            raise sub.error(f'unknown field "mqtt.tls.{key}"')
    if not m.tls_cert or not m.tls_key:
        raise entry.error("mqtt tls needs both cert_file and key_file")


@MQTT_KEYS.key("reject_qos2_publish")
def _mqtt_reject_qos2(opts: Options, entry: Entry) -> None:
    mqtt_options(opts).reject_qos2_publish = entry.boolean()


@MQTT_KEYS.key("downgrade_qos2_subscribe", "downgrade_qos2_sub")
def _mqtt_downgrade_qos2(opts: Options, entry: Entry) -> None:
    mqtt_options(opts).downgrade_qos2_subscribe = entry.boolean()


@MQTT_KEYS.key("receive_maximum")
def _mqtt_receive_maximum(opts: Options, entry: Entry) -> None:
    """Jetport's: the Receive Maximum MQTT 5 clients are told and held to."""
    value = entry.integer()
    if not 1 <= value <= 0xFFFF:
        raise entry.error(f"receive_maximum {value} is out of range (1 to 65535)")
    mqtt_options(opts).receive_maximum = value


@MQTT_KEYS.key("max_keep_alive", "max_keepalive")
def _mqtt_max_keep_alive(opts: Options, entry: Entry) -> None:
    """Jetport's (Mosquitto's ``max_keepalive``): the largest keep-alive a client gets;
    seconds or a duration, 0 for no bound."""
    value = entry.seconds()
    if not 0 <= value <= 0xFFFF or value != int(value):
        raise entry.error(f"max_keep_alive {value:g} is out of range (0 to 65535 seconds)")
    mqtt_options(opts).max_keep_alive = int(value)


@MQTT_KEYS.key("assign_topic_aliases")
def _mqtt_assign_topic_aliases(opts: Options, entry: Entry) -> None:
    """Jetport's: whether outgoing PUBLISH packets get topic aliases."""
    mqtt_options(opts).assign_topic_aliases = entry.boolean()


@MQTT_KEYS.key("authorization", "authentication")
def _mqtt_authorization(opts: Options, entry: Entry) -> None:
    """A user or token only MQTT clients use, as in nats-server's mqtt block."""
    m = mqtt_options(opts)
    block = entry.block()
    for key, value in block.items():
        sub = Entry(key, value, block.where(key))
        name = key.lower()
        if name in ("user", "username"):
            m.username = sub.string()
        elif name in ("pass", "password"):
            m.password = sub.string()
        elif name == "token":
            m.token = sub.string()
        elif name == "timeout":
            m.auth_timeout = sub.seconds()
        else:
            raise sub.error(f'unknown field "mqtt.authorization.{key}"')


@MQTT_KEYS.key("js_domain")
def _mqtt_js_domain(opts: Options, entry: Entry) -> None:
    value = entry.string()
    if any(c in value for c in ".*> \t\r\n"):
        raise entry.error(f"invalid domain name: {value!r} (must be one subject token)")
    mqtt_options(opts).js_domain = value


@MQTT_KEYS.key("stream_replicas")
def _mqtt_stream_replicas(opts: Options, entry: Entry) -> None:
    value = entry.integer()
    if not 0 <= value <= 5:
        raise entry.error(f"stream_replicas {value} is out of range (0 to 5)")
    mqtt_options(opts).stream_replicas = value


# Settings of nats-server's sessions that have no meaning with sessions kept as records
# and one queue stream (no consumer per subscription); accepted so its configs run.
for _name in ("consumer_replicas", "consumer_memory_storage",
              "consumer_inactive_threshold", "js_api_timeout", "max_payload"):
    MQTT_KEYS.key(_name)(lambda opts, entry: None)

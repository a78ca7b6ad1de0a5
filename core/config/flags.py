"""The command line, nats-server's flags, and the last step of every configuration:
the defaults that depend on what was set (:func:`finish`)."""

from __future__ import annotations

import re
from typing import Any

from jetport.core.config import auth, leafnode, mqtt, websocket
from jetport.core.config.file import ConfDict, ConfError, load
from jetport.core.config.keys import TOP_LEVEL_KEYS
from jetport.core.config.options import (
    DEFAULT_AUTH_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_LAME_DUCK_DURATION,
    DEFAULT_LAME_DUCK_GRACE_PERIOD,
    DEFAULT_MAX_CLOSED_CLIENTS,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONTROL_LINE,
    DEFAULT_MAX_PAYLOAD,
    DEFAULT_MAX_PENDING,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_MAX,
    DEFAULT_PORT,
    DEFAULT_TLS_TIMEOUT,
    DEFAULT_WRITE_DEADLINE,
    EMBEDDED_HOST,
    EMBEDDED_HTTP_PORT,
    EMBEDDED_STORE_DIR,
    OPEN_FLAG,
    Options,
    OptionsError,
    default_store_dir,
)


def from_config(conf: ConfDict) -> Options:
    """Options from a parsed config file, nats-server defaults elsewhere."""
    opts = Options()
    TOP_LEVEL_KEYS.apply(opts, conf)
    finish(opts)
    return opts


def finish(opts: Options) -> None:
    """Fill derived defaults the way nats-server does once every source is read."""
    if not opts.host:
        opts.host = DEFAULT_HOST
    if "http_host" not in opts.explicit or not opts.http_host:
        opts.http_host = opts.host
    # nats-server treats zero as "use the default" for these.
    for name, default in (
        ("port", DEFAULT_PORT),
        ("max_payload", DEFAULT_MAX_PAYLOAD),
        ("max_control_line", DEFAULT_MAX_CONTROL_LINE),
        ("max_pending", DEFAULT_MAX_PENDING),
        ("max_connections", DEFAULT_MAX_CONNECTIONS),
        ("max_closed_clients", DEFAULT_MAX_CLOSED_CLIENTS),
        ("ping_interval", DEFAULT_PING_INTERVAL),
        ("ping_max", DEFAULT_PING_MAX),
        ("write_deadline", DEFAULT_WRITE_DEADLINE),
        ("tls_timeout", DEFAULT_TLS_TIMEOUT),
        ("lame_duck_duration", DEFAULT_LAME_DUCK_DURATION),
        ("lame_duck_grace_period", DEFAULT_LAME_DUCK_GRACE_PERIOD),
    ):
        if not getattr(opts, name):
            setattr(opts, name, default)
    if "auth_timeout" not in opts.explicit or not opts.auth_timeout:
        opts.auth_timeout = opts.tls_timeout + 1.0 if opts.tls else DEFAULT_AUTH_TIMEOUT
    if opts.jetstream and not opts.store_dir:
        opts.store_dir = default_store_dir()
    auth.check(opts)
    leafnode.check(opts)
    if opts.max_payload > opts.max_pending:
        raise OptionsError(
            f"max_payload ({opts.max_payload}) cannot be higher than "
            f"max_pending ({opts.max_pending})"
        )


# Go's flag package spells every flag with one or two dashes; "kind" decides whether a
# flag takes the next argument. Targets starting with "@" are handled specially.
_FLAGS: dict[str, tuple[str, str]] = {}


def _flag(kind: str, target: str, *names: str) -> None:
    for name in names:
        _FLAGS[name] = (kind, target)


_flag("str", "host", "a", "addr", "net")
_flag("int", "port", "p", "port")
_flag("str", "server_name", "n", "name", "server_name")
_flag("int", "http_port", "m", "http_port")
_flag("str", "@config", "c", "config")
_flag("bool", "@test", "t")
_flag("bool", "@version", "v", "version")
_flag("bool", "@help", "h", "help")
_flag("bool", "jetstream", "js", "jetstream")
_flag("str", "store_dir", "sd", "store_dir")
_flag("str", "username", "user")
_flag("str", "password", "pass")
_flag("str", "token", "auth")
_flag("bool", "tls", "tls")
_flag("str", "tls_cert", "tlscert")
_flag("str", "tls_key", "tlskey")
_flag("str", "tls_ca", "tlscacert")
_flag("bool", "tls_verify", "tlsverify")
_flag("bool", "debug", "D", "debug")
_flag("bool", "trace", "V", "trace")
_flag("bool", "@DV", "DV")
_flag("bool", "@VV", "VV")
_flag("bool", "@DVV", "DVV")
_flag("bool", "logtime", "T", "logtime")
_flag("bool", "logtime_utc", "logtime_utc")
_flag("str", "log_file", "l", "log")
_flag("int", "log_size_limit", "log_size_limit")
_flag("int", "max_traced_msg_len", "max_traced_msg_len")
_flag("str", "pid_file", "P", "pid")
_flag("str", "ports_file_dir", "ports_file_dir")

_UNSUPPORTED_FLAGS: dict[str, str] = {
    name: feature
    for feature, names in (
        ("clustering", "routes cluster cluster_listen cluster_name cluster_advertise"),
        ("clustering", "no_advertise connect_retries"),
        ("HTTPS monitoring", "ms https_port"),
        ("client advertise", "client_advertise"),
        ("syslog", "s syslog r remote_syslog"),
        ("profiling", "profile"),
        ("signals to a running server", "sl signal"),
        ("TLS help", "help_tls"),
    )
    for name in names.split()
}

_COMBINED_FLAGS = (
    ("@DV", ("debug", "trace")),
    ("@DVV", ("debug", "trace", "trace_verbose")),
    ("@VV", ("trace", "trace_verbose")),
)
_TLS_FLAGS = ("tls", "tlscert", "tlskey", "tlscacert", "tlsverify")
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def accepted_flags() -> list[str]:
    """Every flag name ``jetport serve`` takes (each with one or two dashes)."""
    return sorted([*_FLAGS, OPEN_FLAG])


def _go_int(text: str) -> int:
    """Parse like Go's strconv.ParseInt(text, 0, 64): 0x/0o/0b prefixes, leading-0 octal."""
    sign = text[:1] if text[:1] in ("+", "-") else ""
    body = text[len(sign) :]
    if not body or body != body.strip():
        raise ValueError(text)
    if re.fullmatch(r"0[0-7_]+", body):
        body = "0o" + body[1:]
    value = int(sign + body, 0)
    if not -(2**63) <= value < 2**63:
        raise ValueError(text)
    return value


def _scan_flags(argv: list[str]) -> tuple[list[tuple[str, Any]], list[str]]:
    """Read flags the way Go's flag package does; return them in order, plus the rest."""
    given: list[tuple[str, Any]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if len(arg) < 2 or arg[0] != "-":
            break
        if arg == "--":
            i += 1
            break
        name = arg[2:] if arg.startswith("--") else arg[1:]
        if not name or name[0] in "-=":
            raise OptionsError(f"bad flag syntax: {arg}")
        name, has_value, raw = name.partition("=")
        if name in _UNSUPPORTED_FLAGS:
            raise OptionsError(
                f"flag -{name} is not supported by Jetport ({_UNSUPPORTED_FLAGS[name]})"
            )
        if name not in _FLAGS:
            raise OptionsError(f"flag provided but not defined: -{name}")
        kind = _FLAGS[name][0]
        if kind == "bool":
            if not has_value:
                value: Any = True
            elif raw in _GO_TRUE or raw in _GO_FALSE:
                value = raw in _GO_TRUE
            else:
                raise OptionsError(f"invalid boolean value {raw!r} for -{name}: parse error")
        else:
            if not has_value:
                i += 1
                if i >= len(argv):
                    raise OptionsError(f"flag needs an argument: -{name}")
                raw = argv[i]
            value = raw
            if kind == "int":
                try:
                    value = _go_int(raw)
                except ValueError:
                    raise OptionsError(
                        f"invalid value {raw!r} for flag -{name}: parse error") from None
        given.append((name, value))
        i += 1
    return given, argv[i:]


def parse_args(argv: list[str]) -> Options:
    """Options from nats-server style arguments; ``-c FILE`` is read first, flags win.

    No arguments at all selects the embedded default: JetStream on with data in
    ``./data`` and monitoring on port 8222, every door on its default port of
    127.0.0.1; ``--open`` alone is the same on every interface.
    """
    opening = [a for a in argv if a.lstrip("-") == OPEN_FLAG and a.startswith("-")]
    if opening and len(opening) != len(argv):
        raise OptionsError(
            f"-{OPEN_FLAG} opens the embedded default to other machines and takes no other "
            "flag; with flags or a config file, choose the address with -a (e.g. -a 0.0.0.0)"
        )
    if not argv or opening:
        opts = Options(
            host=DEFAULT_HOST if opening else EMBEDDED_HOST,
            embedded=True,
            jetstream=True,
            store_dir=EMBEDDED_STORE_DIR,
            http_port=EMBEDDED_HTTP_PORT,
        )
        mqtt.embedded(opts)
        websocket.embedded(opts)
        finish(opts)
        return opts
    given, rest = _scan_flags(argv)
    by_target = {_FLAGS[name][1]: value for name, value in given}
    config_file = by_target.get("@config", "")
    if by_target.get("@version"):
        return Options(action="version", config_file=config_file)
    if by_target.get("@help"):
        return Options(action="help", config_file=config_file)
    if rest:
        command = rest[0].lower()
        if command in ("version", "help"):
            return Options(action=command, config_file=config_file)
        raise OptionsError(f"unrecognized command: {rest[0]!r}")
    testing = bool(by_target.get("@test"))
    opts = Options()
    if config_file:
        try:
            TOP_LEVEL_KEYS.apply(opts, load(config_file))
        except ConfError as exc:
            raise OptionsError(str(exc)) from exc
    elif testing:
        raise OptionsError("-t tests a configuration file: give one with -c/--config")
    opts.config_file = config_file
    for name, value in given:
        target = _FLAGS[name][1]
        if not target.startswith("@"):
            opts.set(target, value)
    # Combined flags win over -D/-V whatever the order, as in nats-server.
    for combo, fields in _COMBINED_FLAGS:
        if combo in by_target:
            for name in fields:
                opts.set(name, by_target[combo])
    _apply_tls_flags(opts, given)
    finish(opts)
    opts.action = "test_config" if testing else "serve"
    opts.argv = list(argv)
    return opts


def _apply_tls_flags(opts: Options, given: list[tuple[str, Any]]) -> None:
    """Any --tls* flag turns TLS on (and then needs a cert and key); -tls=false turns it off."""
    names = {name for name, _ in given}
    if "tls" in names and not opts.tls:
        opts.set("tls", False)
        return
    if not names.intersection(_TLS_FLAGS):
        return
    if not opts.tls_cert:
        raise OptionsError("TLS server certificate must be present and valid (--tlscert)")
    if not opts.tls_key:
        raise OptionsError("TLS server private key must be present and valid (--tlskey)")
    opts.set("tls", True)


def usage() -> str:
    """Help text for ``jetport serve``: the nats-server flags Jetport understands."""
    return """\
usage: jetport serve [options]

With no options at all, every door listens on its default port of 127.0.0.1 only
(no authorization is configured), JetStream is on with data in ./data and monitoring
is on port 8222.  "jetport serve --open" is the same on every interface.  With any
other option, Jetport does what nats-server does with it.

Server:
      --open                       the embedded default, on every interface
  -a, --addr, --net <host>         bind to host (default 0.0.0.0)
  -p, --port <port>                client port (default 4222, -1 for a free port)
  -n, --name, --server_name <name> server name
  -m, --http_port <port>           monitoring port (-1 for a free port)
  -c, --config <file>              nats-server configuration file
  -t                               test the configuration file and exit
  -P, --pid <file>                 write the process id to file
      --ports_file_dir <dir>       write the listening ports into dir

Logging:
  -l, --log <file>                 log to file
  -T, --logtime                    timestamp log lines (default true)
      --logtime_utc                timestamps in UTC
      --log_size_limit <bytes>     rotate the log file at this size
      --max_traced_msg_len <len>   cut traced messages at this length
  -D, --debug                      debug output
  -V, --trace                      protocol trace
  -VV                              verbose trace
  -DV                              debug and trace
  -DVV                             debug and verbose trace

JetStream:
  -js, --jetstream                 enable JetStream
  -sd, --store_dir <dir>           storage directory

Authorization:
      --user <user>                user required of clients
      --pass <password>            password required of clients
      --auth <token>               token required of clients

TLS:
      --tls                        enable TLS
      --tlscert <file>             server certificate
      --tlskey <file>              server private key
      --tlsverify                  require and verify client certificates
      --tlscacert <file>           CA for client certificates

  -h, --help                       this message
  -v, --version                    version

Flags take one or two dashes and "-flag value" or "-flag=value"; boolean flags take
only "-flag" or "-flag=false". Clustering, gateway and leaf node flags are refused.
"""

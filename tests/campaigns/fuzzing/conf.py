"""Fuzz target: the configuration file reader (``conf.parse``) and the options built from
what it reads (``options.from_config``).

Inputs are configs in nats-server's format written from a small grammar (the keys the
options layer knows, with values of the right and wrong types, every value syntax the
reader accepts, variables, includes, comments) and then damaged at the character level.
Contract checked: ``parse`` returns or raises :class:`ConfError` whose message names the
file and line; ``from_config`` on a parsed config returns or raises ``OptionsError``.
"""

from __future__ import annotations

import random
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from jetport.core.config import OptionsError, from_config
from jetport.core.config.file import ConfError, parse

from .engine import Case, Target, Violation, literal
from .mutate import mutate_text

TOKENS = ("{", "}", "[", "]", "(", "\n)\n", '"', "'", "\\", "\\x4", "$", "$VAR", "$HOME", "#",
          "//", "\ninclude ", ":", "=", ",", ";", "\n", " ", "1K", "1KiB", "2m", "1h2m3s",
          "2020-01-01T00:00:00Z", "-", ".", "true", "eyJ", "---", "$2a$", "\u00b5s")
INCLUDES = {"inc.conf": "port: 4333\nmax_payload: 2KB\n", "bad.conf": "a: {\n",
            "loop.conf": "include loop.conf\n", "vars.conf": "VAR: 42\n",
            "sub/inner.conf": "include ../inc.conf\n"}
#: A config error names ``file:line``; an include error says where it was included from.
WHERE = re.compile(r":\d+(: |\)$)")


def include_dir() -> Path:
    """A fixed directory with the files the generated configs include (rewritten)."""
    root = Path(tempfile.gettempdir()) / "jetport-fuzz-conf"
    for name, text in INCLUDES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "latin1.conf").write_bytes(b"a: \xff\n")
    return root


def _string(rng: random.Random, word: str) -> str:
    roll = rng.random()
    if roll < 0.5:
        return word
    if roll < 0.8:
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + rng.choice(("", "\\t")) + '"'
    return "'" + word.replace("'", "") + "'"


def v_int(rng: random.Random) -> str:
    return rng.choice(("0", "1", "4222", "-1", "65536", "2147483648", "1K", "1KB", "2Mi", "1GiB",
                       "9223372036854775807", "9223372036854775808", "8E", "1x", "1.5"))


def v_size(rng: random.Random) -> str:
    return rng.choice((v_int(rng), '"1M"', '"64K"', '"10G"', '"1X"', '""', "1T"))


def v_duration(rng: random.Random) -> str:
    return rng.choice(('"2m"', '"1h2m3s"', '"1.5s"', '"300ms"', '"10\u00b5s"', "30", "2.5", '"0"',
                       '"-1s"', '"1d"', '""', '"s"', '".s"', "1m"))


def v_bool(rng: random.Random) -> str:
    return rng.choice(("true", "false", "yes", "no", "on", "off", "TRUE", "1", '"true"'))


def v_str(rng: random.Random) -> str:
    return _string(rng, rng.choice(("localhost", "127.0.0.1", "::1", "a b", "", "x" * 50,
                                    "/tmp/x.log", "ü", "$2a$11$abc")))


def v_hostport(rng: random.Random) -> str:
    return rng.choice(("4222", "-1", '"127.0.0.1:4222"', "0.0.0.0:4222", '"[::1]:4222"',
                       '"host"', '"a:b:c"', '"[::1"', "localhost:x"))


def v_subjects(rng: random.Random) -> str:
    items = [_string(rng, s) for s in rng.sample(("foo", "foo.*", "bar.>", ">", "_INBOX.>",
                                                  "a..b", "*", ""), rng.randint(0, 3))]
    return "[" + rng.choice((", ", "\n", " ")).join(items) + "]" if rng.random() < 0.8 \
        else (items[0] if items else '"x"')


def v_permissions(rng: random.Random) -> str:
    parts = []
    for key in rng.sample(("publish", "subscribe", "allow_responses", "pub", "bogus"),
                          rng.randint(0, 3)):
        if key == "allow_responses":
            value = rng.choice(("true", "{max: 5, expires: \"1m\"}", "{ttl: 1}", "1"))
        elif rng.random() < 0.5:
            value = f"{{allow: {v_subjects(rng)}, deny: {v_subjects(rng)}}}"
        else:
            value = v_subjects(rng)
        parts.append(f"{key}: {value}")
    return "{" + "\n".join(parts) + "}"


def v_user(rng: random.Random) -> str:
    fields = []
    if rng.random() < 0.9:
        fields.append(f"user: {_string(rng, rng.choice(('a', 'bob', '')))}")
    if rng.random() < 0.7:
        fields.append(f"password: {_string(rng, rng.choice(('s3cret', '$2a$11$x')))}")
    if rng.random() < 0.1:
        fields.append("nkey: " + rng.choice(("UABC", "U" + "A" * 55)))
    if rng.random() < 0.3:
        fields.append(f"permissions: {v_permissions(rng)}")
    if rng.random() < 0.2:
        fields.append(f"account: {_string(rng, rng.choice(('A', 'SYS', 'nope')))}")
    if rng.random() < 0.1:
        fields.append("allowed_connection_types: [STANDARD, WEBSOCKET, MQTT, bogus]")
    return "{" + ", ".join(fields) + "}"


def v_users(rng: random.Random) -> str:
    return "[" + "\n".join(v_user(rng) for _ in range(rng.randint(0, 3))) + "]"


def v_authorization(rng: random.Random) -> str:
    choices: dict[str, Callable[[random.Random], str]] = {
        "user": v_str, "password": v_str, "token": v_str, "timeout": v_duration,
        "users": v_users, "permissions": v_permissions, "default_permissions": v_permissions}
    return _block(rng, choices)


def v_accounts(rng: random.Random) -> str:
    accounts = []
    for name in rng.sample(("A", "B", "SYS", "$G"), rng.randint(1, 3)):
        body: dict[str, Callable[[random.Random], str]] = {
            "users": v_users,
            "exports": lambda r: "[{stream: foo.>}, {service: svc, accounts: [B]}]",
            "imports": lambda r: r.choice(("[{stream: {account: A, subject: foo.>}}]",
                                           "[{service: {account: B, subject: svc}, to: x}]",
                                           "[{stream: 1}]", "[{}]")),
            "jetstream": lambda r: r.choice(("enabled", "{max_mem: 1G}", "false", "1")),
            "default_permissions": v_permissions}
        accounts.append(f"{_string(rng, name)}: {_block(rng, body)}")
    return "{" + "\n".join(accounts) + "}"


def v_tls(rng: random.Random) -> str:
    return _block(rng, {"cert_file": v_str, "key_file": v_str, "ca_file": v_str,
                        "verify": v_bool, "timeout": v_duration, "verify_and_map": v_bool,
                        "min_version": lambda r: r.choice(('"1.2"', '"1.3"', "1.1", '"x"'))})


def v_jetstream(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return rng.choice(("enabled", "disabled", "true", "false", "maybe", "1"))
    return _block(rng, {"store_dir": v_str, "max_mem": v_size, "max_file": v_size,
                        "sync_interval": lambda r: r.choice(("always", '"2m"', "never")),
                        "enabled": v_bool, "domain": v_str})


def v_mqtt(rng: random.Random) -> str:
    return _block(rng, {"port": v_int, "listen": v_hostport, "host": v_str,
                        "ack_wait": v_duration, "max_ack_pending": v_int, "tls": v_tls,
                        "no_auth_user": v_str, "authorization": v_authorization,
                        "reject_qos2_publish": v_bool})


def v_websocket(rng: random.Random) -> str:
    return _block(rng, {"port": v_int, "listen": v_hostport, "no_tls": v_bool,
                        "compression": v_bool, "same_origin": v_bool,
                        "allowed_origins": v_subjects, "handshake_timeout": v_duration,
                        "headers": lambda r: '{"X-A": "b", "Y": 1}', "tls": v_tls,
                        "jwt_cookie": v_str, "authorization": v_authorization})


def v_operator(rng: random.Random) -> str:
    return _string(rng, rng.choice(("eyJhbGciOiJlZDI1NTE5In0.e30.x", "eyJ", "op.jwt",
                                    "-----BEGIN NATS OPERATOR JWT-----\neyJ\n------END------\n")))


TOP_KEYS: dict[str, Callable[[random.Random], str]] = {
    "port": v_int, "host": v_str, "listen": v_hostport, "http": v_hostport,
    "http_port": v_int, "server_name": v_str, "max_payload": v_size,
    "max_control_line": v_size, "max_pending": v_size, "max_connections": v_int,
    "ping_interval": v_duration, "ping_max": v_int, "write_deadline": v_duration,
    "debug": v_bool, "trace": v_bool, "logtime": v_bool, "log_file": v_str,
    "lame_duck_duration": v_duration, "lame_duck_grace_period": v_duration,
    "jetstream": v_jetstream, "authorization": v_authorization, "tls": v_tls, "mqtt": v_mqtt,
    "websocket": v_websocket, "accounts": v_accounts, "no_auth_user": v_str,
    "system_account": v_str, "operator": v_operator, "resolver": lambda r: "MEMORY",
    "resolver_preload": lambda r: "{ABC: " + v_operator(r) + "}",
    "monitoring_auth": lambda r: r.choice(("system", "none", "all")),
    "max_traced_msg_len": v_int, "cluster": lambda r: "{port: 6222}", "bogus_key": v_str,
    "store_dir": v_str, "trace_verbose": v_bool,
}


def _entry(rng: random.Random, key: str, value: str) -> str:
    sep = rng.choice((": ", " = ", " ", ":", "="))
    key = key.upper() if rng.random() < 0.05 else key
    comment = rng.choice(("", "", "", "  # note", " // note"))
    return f"{key}{sep}{value}{comment}"


def _block(rng: random.Random, choices: dict[str, Callable[[random.Random], str]]) -> str:
    keys = rng.sample(sorted(choices), rng.randint(0, min(4, len(choices))))
    joiner = rng.choice(("\n", ", ", "; ", "\n  "))
    return "{" + joiner.join(_entry(rng, k, choices[k](rng)) for k in keys) + "}"


def _odd_value(rng: random.Random) -> str:
    """Value syntaxes the options layer does not ask for: raw blocks, dates, variables."""
    return rng.choice(("(\nraw text\n)", "2020-01-01T00:00:00Z", "2020-01-01", "$VAR",
                       "$HOME", "$NOT_SET_ANYWHERE", "[1, 2]", "[]", "{}", "1.5.6", "-", ".5",
                       '"\\x41\\n"', '"\\q"', "3secret", "12:30", "[[[]]]", "{a {b {c: 1}}}"))


def config(rng: random.Random) -> str:
    lines = []
    if rng.random() < 0.3:
        lines.append(f"VAR {rng.choice(('=', ':'))} {v_int(rng)}")
    for _ in range(rng.randint(1, 6)):
        roll = rng.random()
        if roll < 0.75:
            key = rng.choice(sorted(TOP_KEYS))
            lines.append(_entry(rng, key, TOP_KEYS[key](rng)))
        elif roll < 0.85:
            key = rng.choice(sorted(TOP_KEYS))
            lines.append(_entry(rng, key, "$VAR" if rng.random() < 0.5 else _odd_value(rng)))
        elif roll < 0.9:
            name = rng.choice((*INCLUDES, "latin1.conf", "missing.conf", "/inc.conf"))
            lines.append(f"include {_string(rng, name)}")
        else:
            lines.append(rng.choice(("# comment", "// comment", "", "  ")))
    text = "\n".join(lines) + rng.choice(("\n", "", "\r\n"))
    return "{\n" + text + "}\n" if rng.random() < 0.05 else text


def generate(rng: random.Random) -> Case:
    text = config(rng)
    roll = rng.random()
    if roll < 0.5:
        text = mutate_text(rng, text, TOKENS)
    elif roll < 0.53:
        text = "".join(chr(rng.randrange(0x80)) for _ in range(rng.randint(0, 80)))
    return Case(text)


_PATH: list[str] = []


def conf_path() -> str:
    """The name configs are parsed under: beside the include files."""
    if not _PATH:
        _PATH.append(str(include_dir() / "main.conf"))
    return _PATH[0]


def _kind(prefix: str, message: str) -> str:
    """A rejection's fixed words: without file, line, quoted values, paths and numbers."""
    if "cannot open config file" in message:
        return f"{prefix}: include: cannot open config file"
    text = re.sub(r"^\S*?:\d+: ", "", message.split("\n", 1)[0])
    text = re.sub(r"(unknown field|got) .*", r"\1 X", text)
    text = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "Q", text)
    text = re.split(r"['\"\d:]", text)[0].strip(" ,")
    return f"{prefix}: {text[:70].lower()}".encode("ascii", "replace").decode()


def run(case: Case) -> list[str]:
    """Parse the text, and build options from what parsed: each may refuse it only with
    its own error type."""
    assert isinstance(case.data, str)
    try:
        conf = parse(case.data, conf_path())
    except ConfError as exc:
        if not WHERE.search(str(exc)):
            raise Violation(f"ConfError without file:line: {exc}") from exc
        return [_kind("conf", str(exc))]
    try:
        from_config(conf)
    except OptionsError as exc:
        return [_kind("options", str(exc))]
    return []


def reproducer(case: Case) -> str:
    """The case as a snippet; the include files are written by ``conf_path``."""
    return ("from campaigns.fuzzing.conf import conf_path  # tests/ on sys.path: include files\n"
            "from jetport.core.config.file import parse\n"
            "from jetport.core.config import from_config\n"
            f"text = {literal(case.data)}\n"
            "print(from_config(parse(text, conf_path())))")


TARGET = Target("conf", generate, run, reproducer)

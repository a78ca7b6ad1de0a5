"""Options from nats-server config files and command-line flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from jetport.core.config import (
    Options,
    OptionsError,
    default_store_dir,
    from_config,
    parse_args,
    parse_duration,
    parse_size,
    usage,
)
from jetport.core.config.file import ConfDict, parse
from jetport.core.config.keys import TOP_LEVEL_KEYS, Entry, KeyTable


def opts_from(text: str, filename: str = "srv.conf") -> Options:
    return from_config(parse(text, filename))


def error_from(text: str, filename: str = "srv.conf") -> str:
    with pytest.raises(OptionsError) as info:
        opts_from(text, filename)
    return str(info.value)


# -- defaults ---------------------------------------------------------------------------


def test_defaults_match_nats_server() -> None:
    opts = opts_from("")
    assert (opts.host, opts.port, opts.http_host, opts.http_port) == ("0.0.0.0", 4222, "0.0.0.0", 0)
    assert (opts.max_payload, opts.max_control_line) == (1048576, 4096)
    assert (opts.max_pending, opts.max_connections) == (67108864, 65536)
    assert (opts.ping_interval, opts.ping_max, opts.write_deadline) == (120.0, 2, 10.0)
    assert (opts.auth_timeout, opts.tls_timeout) == (2.0, 2.0)
    assert (opts.lame_duck_duration, opts.lame_duck_grace_period) == (120.0, 10.0)
    assert (opts.jetstream, opts.store_dir) == (False, "")
    assert (opts.jetstream_max_memory, opts.jetstream_max_store) == (-1, -1)
    assert opts.logtime and not opts.debug and not opts.trace and not opts.tls
    assert opts.action == "serve" and not opts.embedded
    assert opts == Options()


def test_zero_means_default_like_nats_server() -> None:
    opts = opts_from('port: 0\nmax_connections: 0\nping_interval: "0s"\nmax_payload: 0\n')
    assert (opts.port, opts.max_connections, opts.ping_interval) == (4222, 65536, 120.0)
    assert opts.max_payload == 1048576


# -- real-world configs -----------------------------------------------------------------

PRODUCTION = """
# Production hub
server_name: hub-eu-1
listen: 10.0.0.5:4222
http: 127.0.0.1:8222   // monitoring only locally

max_payload: 2MB
max_connections: 10K
ping_interval: "1m"
write_deadline: "5s"

jetstream {
    store_dir: "/var/lib/nats"
    max_mem: 1G          # decimal: 10^9
    max_file: "100G"     # quoted: 100 * 2^30
}

authorization {
    user: app
    password: "s3cr3t!"
    timeout: 5
}

tls {
    cert_file: "/etc/nats/server.pem"
    key_file: "/etc/nats/server-key.pem"
    ca_file: "/etc/nats/ca.pem"
    verify: true
    timeout: 3
}

debug: false
trace: false
logtime: true
log_file: "/var/log/nats.log"
pid_file: /var/run/nats.pid
lame_duck_duration: "60s"
lame_duck_grace_period: "15s"
"""


def test_production_config() -> None:
    opts = opts_from(PRODUCTION)
    assert opts.server_name == "hub-eu-1"
    assert (opts.host, opts.port) == ("10.0.0.5", 4222)
    assert (opts.http_host, opts.http_port) == ("127.0.0.1", 8222)
    assert (opts.max_payload, opts.max_connections) == (2 * 1024 * 1024, 10_000)
    assert (opts.ping_interval, opts.write_deadline) == (60.0, 5.0)
    assert opts.jetstream and opts.store_dir == "/var/lib/nats"
    assert opts.jetstream_max_memory == 1_000_000_000
    assert opts.jetstream_max_store == 100 * 2**30
    assert (opts.username, opts.password, opts.auth_timeout) == ("app", "s3cr3t!", 5.0)
    assert opts.tls and opts.tls_verify
    assert (opts.tls_cert, opts.tls_key) == ("/etc/nats/server.pem", "/etc/nats/server-key.pem")
    assert (opts.tls_ca, opts.tls_timeout) == ("/etc/nats/ca.pem", 3.0)
    assert (opts.log_file, opts.pid_file) == ("/var/log/nats.log", "/var/run/nats.pid")
    assert (opts.lame_duck_duration, opts.lame_duck_grace_period) == (60.0, 15.0)


def test_dev_config_with_variables_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JETPORT_TEST_TOKEN", "tok-from-env")
    opts = opts_from(
        """
        PORT = 4333
        port: $PORT
        http_port = 8333
        jetstream: enabled
        authorization {
            token: $JETPORT_TEST_TOKEN
        }
        debug: yes
        trace: on
        """
    )
    assert (opts.port, opts.http_port, opts.http_host) == (4333, 8333, "0.0.0.0")
    assert opts.jetstream and opts.store_dir == default_store_dir()
    assert opts.token == "tok-from-env"
    assert opts.debug and opts.trace


def test_json_style_config() -> None:
    opts = opts_from('{"host": "127.0.0.1", "port": 4333, "monitor_port": 8333}')
    assert (opts.host, opts.port, opts.http_port, opts.http_host) == (
        "127.0.0.1",
        4333,
        8333,
        "127.0.0.1",
    )


# -- individual keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "host", "port"),
    [
        ('"127.0.0.1:4333"', "127.0.0.1", 4333),
        ("127.0.0.1:4333", "127.0.0.1", 4333),
        ("4333", "0.0.0.0", 4333),
        ('":4333"', "0.0.0.0", 4333),
        ('"[::1]:4333"', "::1", 4333),
        ("localhost:-1", "localhost", -1),
    ],
)
def test_listen(value: str, host: str, port: int) -> None:
    opts = opts_from(f"listen: {value}")
    assert (opts.host, opts.port) == (host, port)


@pytest.mark.parametrize("value", ['"no-port"', '"::1:4222"', '"host:abc"', "true", "[1]"])
def test_bad_listen(value: str) -> None:
    assert error_from(f"\nlisten: {value}").startswith("srv.conf:2: ")


def test_host_and_net_aliases_and_http_host_follows_host() -> None:
    assert opts_from("host: 127.0.0.1").http_host == "127.0.0.1"
    assert opts_from("net: 10.1.1.1").host == "10.1.1.1"
    opts = opts_from("host: 127.0.0.1\nhttp: 0.0.0.0:8222")
    assert (opts.http_host, opts.http_port) == ("0.0.0.0", 8222)
    assert opts_from("http: 8222").http_port == 8222


def test_keys_are_case_insensitive() -> None:
    opts = opts_from("PORT: 4333\nJetStream { Store_Dir: /tmp/js }\nAuthorization { USER: a }")
    assert (opts.port, opts.store_dir, opts.username) == (4333, "/tmp/js", "a")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jetstream: true", True),
        ("jetstream: false", False),
        ("jetstream: enabled", True),
        ("jetstream: Enable", True),
        ("jetstream: disabled", False),
        ("jetstream {}", True),
        ("jetstream { enabled: false }", False),
        ("jetstream { store: /tmp/js }", True),
    ],
)
def test_jetstream_forms(text: str, expected: bool) -> None:
    assert opts_from(text).jetstream is expected


def test_jetstream_sizes() -> None:
    opts = opts_from('jetstream { max_memory_store: 512MB, max_file_store: "2T" }')
    assert (opts.jetstream_max_memory, opts.jetstream_max_store) == (512 * 2**20, 2 * 2**40)
    opts = opts_from('jetstream { max_mem_store: "64M", max_file: 0 }')
    assert (opts.jetstream_max_memory, opts.jetstream_max_store) == (64 * 2**20, 0)


@pytest.mark.parametrize("value", ['"1Gi"', '"1g"', '"100"', "true"])
def test_jetstream_bad_sizes(value: str) -> None:
    assert error_from(f"jetstream {{\n max_mem: {value}\n}}").startswith("srv.conf:2: ")


def test_jetstream_store_dir_at_top_level_and_duplicate() -> None:
    assert opts_from("store_dir: /a\njetstream: true").store_dir == "/a"
    message = error_from("store_dir: /a\njetstream { store_dir: /b }")
    assert message.startswith("srv.conf:2: ") and "duplicate" in message


def test_bad_jetstream_value() -> None:
    assert "enabled" in error_from("jetstream: maybe")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30", 30.0), ("1.5", 1.5), ('"30s"', 30.0), ('"2m"', 120.0), ('"1h2m"', 3720.0)],
)
def test_ping_interval(value: str, seconds: float) -> None:
    assert opts_from(f"ping_interval: {value}").ping_interval == seconds


@pytest.mark.parametrize("value", ['"2x"', '"abc"', "true", '"5"'])
def test_bad_duration(value: str) -> None:
    message = error_from(f"port: 1\nwrite_deadline: {value}")
    assert message.startswith("srv.conf:2: ")


def test_lame_duck_limits() -> None:
    assert "minimum is 30 seconds" in error_from('lame_duck_duration: "10s"')
    assert "srv.conf:1" in error_from('lame_duck_grace_period: "-1s"')


def test_authorization() -> None:
    opts = opts_from('authorization { username: u, pass: p, timeout: "1.5s" }')
    assert (opts.username, opts.password, opts.auth_timeout) == ("u", "p", 1.5)
    assert "token" in error_from("authorization { user: u, token: t }")


def test_auth_timeout_follows_tls_timeout_unless_set() -> None:
    tls = "tls { cert_file: c.pem, key_file: k.pem, timeout: 4 }"
    assert opts_from(tls).auth_timeout == 5.0
    assert opts_from(tls + "\nauthorization { timeout: 2 }").auth_timeout == 2.0


def test_tls_needs_cert_and_key() -> None:
    assert "cert_file" in error_from("tls { verify: true }")


def test_type_errors_name_the_line() -> None:
    assert error_from("\ndebug: 1").startswith("srv.conf:2: ")
    assert error_from("port: true").startswith("srv.conf:1: ")
    assert error_from("server_name: 1.5").startswith("srv.conf:1: ")
    assert error_from("authorization: yes").startswith("srv.conf:1: ")


def test_max_payload_limits() -> None:
    assert "too big" in error_from("max_payload: 4GB")
    assert "max_pending" in error_from("max_payload: 100MB")
    assert opts_from("max_payload: 100MB\nmax_pending: 200MB").max_payload == 100 * 2**20


def test_trace_verbose_implies_trace() -> None:
    opts = opts_from("trace_verbose: true")
    assert opts.trace and opts.trace_verbose


def test_mqtt_jetport_keys() -> None:
    """The mqtt block's keys of Jetport's own (nats-server has no MQTT 5): Receive
    Maximum, Server Keep Alive's bound (Mosquitto's max_keepalive), topic aliases out."""
    opts = opts_from("mqtt {\n port: 1883\n}")
    assert opts.mqtt is not None
    assert (opts.mqtt.receive_maximum, opts.mqtt.max_keep_alive,
            opts.mqtt.assign_topic_aliases) == (65535, 0, True)
    opts = opts_from('mqtt { port: 1883, receive_maximum: 10, max_keep_alive: "1m",'
                     " assign_topic_aliases: false }")
    assert opts.mqtt is not None
    assert (opts.mqtt.receive_maximum, opts.mqtt.max_keep_alive,
            opts.mqtt.assign_topic_aliases) == (10, 60, False)
    opts = opts_from("mqtt { port: 1883, max_keepalive: 30 }")  # Mosquitto's spelling
    assert opts.mqtt is not None and opts.mqtt.max_keep_alive == 30


@pytest.mark.parametrize(("text", "words"), [
    ("receive_maximum: 0", "receive_maximum 0 is out of range"),
    ("receive_maximum: 65536", "out of range (1 to 65535)"),
    ("receive_maximum: ten", "receive_maximum"),
    ("max_keep_alive: 65536", "max_keep_alive 65536 is out of range"),
    ("max_keep_alive: -1", "out of range"),
    ('max_keep_alive: "1.5s"', "out of range"),
    ("assign_topic_aliases: 3", "assign_topic_aliases"),
    ("topic_aliases: true", 'unknown field "mqtt.topic_aliases"'),
])
def test_mqtt_jetport_keys_refused_with_file_and_line(text: str, words: str) -> None:
    message = error_from(f"port: 1\nmqtt {{\n port: 1883\n {text}\n}}")
    assert message.startswith("srv.conf:4: ") and words in message, message


# -- unknown and unsupported keys ----------------------------------------------------------


def test_unknown_field() -> None:
    assert error_from("port: 1\n\nbogus: 2\n") == 'srv.conf:3: unknown field "bogus"'


@pytest.mark.parametrize(
    "text",
    [
        "cluster { port: 6222 }",
        "gateway { name: a }",
        "leafnodes { port: 7422 }",
        "mappings { a: b }",
        "trusted_keys: [OABC]",
        "resolver: URL(http://localhost:9090/jwt/v1/accounts/)",
        "https: 8443",
    ],
)
def test_unsupported_blocks_are_rejected(text: str) -> None:
    message = error_from(f"port: 1\n{text}")
    assert message.startswith("srv.conf:2: ") and "not supported" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("authorization {\n  auth_callout: {}\n}", "authorization.auth_callout"),
        ("tls {\n  cipher_suites: [x]\n}", "tls.cipher_suites"),
        ("jetstream {\n  key: secret\n}", "jetstream.key"),
    ],
)
def test_unsupported_nested_keys(text: str, key: str) -> None:
    message = error_from(text)
    assert message.startswith("srv.conf:2: ") and f'"{key}" is not supported' in message


def test_jetstream_domain_is_one_subject_token() -> None:
    opts = opts_from("jetstream {\n  domain: hub\n}")
    assert opts.jetstream and opts.jetstream_domain == "hub"
    for bad in ('"a.b"', '"a*"', '"x>"', '"a b"', '""'):
        assert error_from(f"jetstream {{\n  domain: {bad}\n}}").startswith(
            "srv.conf:2: invalid domain name")


def test_unknown_nested_key() -> None:
    assert error_from("tls {\n cert_file: a\n key_file: b\n colour: red\n}") == (
        'srv.conf:4: unknown field "tls.colour"'
    )


def test_errors_are_collected() -> None:
    message = error_from("a: 1\nport: 2\nb: 3\ncluster {}\n")
    assert message.splitlines() == [
        'srv.conf:1: unknown field "a"',
        'srv.conf:3: unknown field "b"',
        'srv.conf:4: "cluster" is not supported by Jetport (clustering)',
    ]


def test_used_variables_are_not_unknown_fields() -> None:
    assert opts_from("SECRET: abc\nauthorization { token: $SECRET }").token == "abc"
    assert 'unknown field "UNUSED"' in error_from("UNUSED: abc\nport: 1")


def test_errors_inside_included_file_name_that_file(tmp_path: Path) -> None:
    (tmp_path / "cluster.conf").write_text("\n\ncluster {\n  port: 6222\n}\n")
    (tmp_path / "bogus.conf").write_text("port: 1\nbogus: 1\n")
    main = tmp_path / "main.conf"
    main.write_text("include cluster.conf\ninclude bogus.conf\n")
    with pytest.raises(OptionsError) as info:
        parse_args(["-c", str(main)])
    lines = str(info.value).splitlines()
    assert f"{tmp_path / 'cluster.conf'}:3: " in lines[0] and "not supported" in lines[0]
    assert lines[1] == f'{tmp_path / "bogus.conf"}:2: unknown field "bogus"'


def test_key_table_can_be_extended() -> None:
    table = KeyTable("demo.")
    table.not_supported("demo feature", "widget")
    seen: list[object] = []

    def widget(opts: Options, entry: Entry) -> None:
        seen.append(entry.integer())

    with pytest.raises(OptionsError, match="not supported"):
        table.apply(Options(), parse("widget: 1"))
    table.key("widget", "gadget")(widget)
    table.apply(Options(), parse("Widget: 1\ngadget: 2"))
    assert seen == [1, 2]
    assert "widget" not in table.unsupported


def test_top_level_table_lists_the_supported_keys() -> None:
    for key in ("listen", "port", "jetstream", "authorization", "tls", "max_conn", "logfile",
                "accounts", "no_auth_user", "operator", "leafnodes", "leaf"):
        assert key in TOP_LEVEL_KEYS.handlers
    for key in ("cluster", "mappings", "gateway"):
        assert key in TOP_LEVEL_KEYS.unsupported


# -- durations and sizes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("2m", 120.0),
        ("30s", 30.0),
        ("1h2m", 3720.0),
        ("1.5h", 5400.0),
        ("300ms", 0.3),
        ("1us", 1e-6),
        ("1\u00b5s", 1e-6),
        ("10ns", 1e-8),
        ("-1m", -60.0),
        ("+5s", 5.0),
        (".5s", 0.5),
        ("1m30.5s", 90.5),
        ("1.m", 60.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1x", "s", ".s", "-", "1m5", "..5s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "size"),
    [(42, 42), ("42", 42), ("1K", 1000), ("1KB", 1024), ("1KiB", 1024), ("2g", 2 * 10**9)],
)
def test_parse_size(value: int | str, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["1X", "abc", "", "1.5K"])
def test_parse_size_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


# -- flags ----------------------------------------------------------------------------


def test_empty_argv_is_the_embedded_default() -> None:
    opts = parse_args([])
    assert opts.embedded and opts.jetstream
    assert (opts.store_dir, opts.http_port, opts.port) == ("./data", 8222, 4222)
    assert opts.action == "serve"


def test_any_argument_leaves_embedded_mode() -> None:
    opts = parse_args(["-p", "4222"])
    assert not opts.embedded and not opts.jetstream and opts.http_port == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["-sd", "/data/js"],
        ["-sd=/data/js"],
        ["--sd", "/data/js"],
        ["--store_dir", "/data/js"],
        ["--store_dir=/data/js"],
        ["-store_dir=/data/js"],
    ],
)
def test_string_flag_spellings(argv: list[str]) -> None:
    assert parse_args(argv).store_dir == "/data/js"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["-js"], True),
        (["--js"], True),
        (["--jetstream"], True),
        (["-js=true"], True),
        (["-js=1"], True),
        (["-js=T"], True),
        (["-js=false"], False),
        (["--jetstream=0"], False),
        (["-js", "-js=false"], False),
    ],
)
def test_bool_flag_spellings(argv: list[str], expected: bool) -> None:
    assert parse_args(argv).jetstream is expected


def test_bool_flag_does_not_consume_next_argument() -> None:
    with pytest.raises(OptionsError, match="unrecognized command: 'false'"):
        parse_args(["-js", "false"])


def test_js_alone_uses_the_nats_server_default_store_dir() -> None:
    opts = parse_args(["-js"])
    assert opts.store_dir == default_store_dir()
    assert opts.store_dir.endswith("nats")


def test_server_flags() -> None:
    opts = parse_args(
        ["-a", "127.0.0.1", "--port=4333", "-n", "hub", "-m", "8333", "-P", "/tmp/p.pid"]
        + ["-l", "/tmp/j.log", "--user", "u", "--pass", "p", "-T=false"]
    )
    assert (opts.host, opts.port, opts.server_name) == ("127.0.0.1", 4333, "hub")
    assert (opts.http_port, opts.http_host) == (8333, "127.0.0.1")
    assert (opts.pid_file, opts.log_file) == ("/tmp/p.pid", "/tmp/j.log")
    assert (opts.username, opts.password, opts.logtime) == ("u", "p", False)
    assert parse_args(["--auth", "tok", "--addr", "::"]).token == "tok"
    assert parse_args(["--net", "10.0.0.1", "--name", "x"]).host == "10.0.0.1"
    assert parse_args(["--server_name", "x", "--http_port", "-1"]).http_port == -1
    assert parse_args(["-p", "-1"]).port == -1


def test_integer_flags_parse_like_go() -> None:
    assert parse_args(["-p", "0x10E1"]).port == 0x10E1
    assert parse_args(["-p", "010"]).port == 8
    with pytest.raises(OptionsError, match="invalid value 'abc' for flag -p"):
        parse_args(["-p", "abc"])


@pytest.mark.parametrize(
    ("argv", "debug", "trace", "verbose"),
    [
        (["-D"], True, False, False),
        (["--debug"], True, False, False),
        (["-V"], False, True, False),
        (["--trace"], False, True, False),
        (["-DV"], True, True, False),
        (["-VV"], False, True, True),
        (["-DVV"], True, True, True),
        (["-DV", "-D=false"], True, True, False),
    ],
)
def test_logging_flags(argv: list[str], debug: bool, trace: bool, verbose: bool) -> None:
    opts = parse_args(argv)
    assert (opts.debug, opts.trace, opts.trace_verbose) == (debug, trace, verbose)


@pytest.mark.parametrize(
    ("argv", "action"),
    [
        (["-v"], "version"),
        (["--version"], "version"),
        (["-h"], "help"),
        (["--help"], "help"),
        (["version"], "version"),
        (["help"], "help"),
        (["-p", "1", "version"], "version"),
    ],
)
def test_actions(argv: list[str], action: str) -> None:
    assert parse_args(argv).action == action


def test_double_dash_ends_flags() -> None:
    assert parse_args(["-p", "1", "--", "version"]).action == "version"


@pytest.mark.parametrize(
    "argv",
    [
        ["--routes", "nats://a:6222"],
        ["--cluster", "nats://0.0.0.0:6222"],
        ["--cluster_name", "c"],
        ["--cluster_listen=nats://0.0.0.0:6222"],
        ["--cluster_advertise", "x"],
        ["--no_advertise"],
        ["--connect_retries", "3"],
        ["-ms", "8443"],
        ["--https_port", "8443"],
        ["--client_advertise", "x"],
        ["-sl", "stop"],
        ["--profile", "6060"],
        ["-s"],
        ["--syslog"],
    ],
)
def test_unsupported_flags(argv: list[str]) -> None:
    with pytest.raises(OptionsError, match="not supported by Jetport"):
        parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-x"], "flag provided but not defined: -x"),
        (["--max_payload", "1"], "flag provided but not defined: -max_payload"),
        (["-p"], "flag needs an argument: -p"),
        (["-js=maybe"], "invalid boolean value 'maybe' for -js"),
        (["---p", "1"], "bad flag syntax: ---p"),
        (["-=x"], "bad flag syntax: -=x"),
        (["bogus"], "unrecognized command: 'bogus'"),
        (["-t"], "-t tests a configuration file"),
    ],
)
def test_flag_errors(argv: list[str], message: str) -> None:
    with pytest.raises(OptionsError, match=message):
        parse_args(argv)


def test_tls_flags() -> None:
    opts = parse_args(["--tlscert", "c.pem", "--tlskey", "k.pem", "--tlsverify", "--tlscacert=ca"])
    assert opts.tls and opts.tls_verify
    assert (opts.tls_cert, opts.tls_key, opts.tls_ca) == ("c.pem", "k.pem", "ca")
    assert opts.auth_timeout == opts.tls_timeout + 1
    with pytest.raises(OptionsError, match="certificate"):
        parse_args(["--tls"])
    with pytest.raises(OptionsError, match="private key"):
        parse_args(["--tlscert", "c.pem"])


# -- config file plus flags ---------------------------------------------------------------


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "hub.conf"
    path.write_text(
        "listen: 127.0.0.1:4333\nserver_name: from-file\ndebug: true\n"
        "jetstream { store_dir: /var/js }\n"
        "tls { cert_file: c.pem, key_file: k.pem }\n"
    )
    return path


def test_config_file_is_loaded(config_file: Path) -> None:
    opts = parse_args(["-c", str(config_file)])
    assert opts.config_file == str(config_file)
    assert (opts.host, opts.port, opts.server_name) == ("127.0.0.1", 4333, "from-file")
    assert opts.debug and opts.jetstream and opts.store_dir == "/var/js" and opts.tls
    assert parse_args(["--config", str(config_file)]).port == 4333
    assert parse_args([f"--config={config_file}"]).port == 4333


def test_flags_override_the_config_file(config_file: Path) -> None:
    opts = parse_args(
        ["-p", "5000", "-D=false", "-c", str(config_file), "-sd", "/other", "-n", "flag"]
    )
    assert (opts.port, opts.host) == (5000, "127.0.0.1")
    assert (opts.debug, opts.store_dir, opts.server_name) == (False, "/other", "flag")
    assert opts.http_host == "127.0.0.1"


def test_flags_not_given_keep_config_values(config_file: Path) -> None:
    opts = parse_args(["-c", str(config_file), "-V"])
    assert opts.debug and opts.trace and opts.logtime


def test_tls_false_flag_disables_config_tls(config_file: Path) -> None:
    assert not parse_args(["-c", str(config_file), "-tls=false"]).tls
    assert parse_args(["-c", str(config_file), "--tlsverify"]).tls_verify


def test_test_config_action(config_file: Path) -> None:
    opts = parse_args(["-t", "-c", str(config_file)])
    assert opts.action == "test_config" and opts.config_file == str(config_file)


def test_config_errors_come_back_as_options_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("port: 1\nfoo {\n")
    with pytest.raises(OptionsError, match=r"bad\.conf:3: "):
        parse_args(["-t", "-c", str(bad)])
    unsupported = tmp_path / "cluster.conf"
    unsupported.write_text("port: 1\ncluster { port: 6222 }\n")
    with pytest.raises(OptionsError, match=r"cluster\.conf:2: .*not supported"):
        parse_args(["-c", str(unsupported)])
    with pytest.raises(OptionsError, match="cannot open"):
        parse_args(["-c", str(tmp_path / "missing.conf")])


def test_from_config_accepts_a_plain_conf_dict() -> None:
    conf = ConfDict()
    conf.define("port", 4333, "x.conf:1")
    assert from_config(conf).port == 4333


def test_usage_mentions_the_flags() -> None:
    text = usage()
    for flag in ("--store_dir", "-js", "--tlscert", "-DVV", "--config", "-t "):
        assert flag in text


def test_mqtt_state_in_a_jetstream_domain() -> None:
    opts = opts_from("mqtt {\n  port: 1883\n  js_domain: hub\n  stream_replicas: 3\n"
                     "  consumer_replicas: 1\n}")
    assert opts.mqtt is not None
    assert (opts.mqtt.js_domain, opts.mqtt.stream_replicas) == ("hub", 3)
    assert error_from("mqtt {\n  js_domain: \"a.b\"\n}").startswith(
        "srv.conf:2: invalid domain name")
    assert "out of range" in error_from("mqtt {\n  stream_replicas: 7\n}")

"""The config format reader agrees with nats-server: texts it accepts pass
``nats-server -t``, and syntax it refuses nats-server refuses too, as it does the
``leafnodes {}`` blocks Jetport refuses for what they say."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nkeys
import pytest

from jetport.core.config import OptionsError, from_config
from jetport.core.config.file import ConfError, load

NATS_SERVER = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "nats-server"
if not NATS_SERVER.exists() and shutil.which("nats-server"):
    NATS_SERVER = Path(shutil.which("nats-server") or "")
needs_nats = pytest.mark.skipif(not NATS_SERVER.is_file(), reason="nats-server not installed")


VALID_CONFIGS = {
    "basic": "port: 4222\nhost: 127.0.0.1\n",
    "separators": "port = 4333;\nserver_name hub-a\nmax_payload: 512KB\n",
    "listen_http": "listen: 127.0.0.1:4333\nhttp: 127.0.0.1:8333\n",
    "http_port_only": "listen: 4333\nhttp_port: 8333\n",
    "jetstream_block": (
        "jetstream {\n  store_dir: '/tmp/jetport-js'\n  max_mem: 1G\n  max_file: \"10G\"\n}\n"
    ),
    "jetstream_enabled": "jetstream: enabled\nstore_dir: /tmp/jetport-js\n",
    "jetstream_empty_block": "jetstream {}\n",
    "authorization": ("authorization {\n  user: alice\n  password: 's3cr3t'\n  timeout: 2.5\n}\n"),
    "token": 'authorization { token: "abc" }\n',
    "durations": (
        'ping_interval: "30s"\nping_max: 3\nwrite_deadline: "2s"\n'
        'lame_duck_duration: "2m"\nlame_duck_grace_period: "5s"\n'
    ),
    "comments": (
        "# hash\n// slashes\nport: 4222 # trailing\ndebug: true // trailing\n"
        "trace: off\nlogtime: yes\n"
    ),
    "variables": "PORT_VAR: 4333\nport: $PORT_VAR\nNAME = hub\nserver_name: $NAME\n",
    "json": '{ "port": 4333, "debug": false }\n',
    "sizes": "max_payload: 1MB\nmax_pending: 64MB\nmax_control_line: 4KB\nmax_connections: 1K\n",
    "logging": "log_file: '/tmp/jetport.log'\npid_file: /tmp/jetport.pid\nlogtime: false\n",
    "leafnodes_one_url": 'leafnodes {\n  remotes: [ { url: "nats-leaf://127.0.0.1:7422" } ]\n}\n',
    "leafnodes_remotes": (
        'leafnodes {\n  reconnect: "5s"\n  remotes = [\n'
        '    { urls: ["nats-leaf://u:p@10.0.0.1:7422", "nats://10.0.0.2", "tls://hub:7422"]\n'
        '      account: SALES, deny_imports: "private.>", deny_export: ["a", "b.*"]\n'
        "      no_randomize: true, tls { timeout: 3, min_version: \"1.3\" } }\n"
        '    { url: "nats://token@hub", local: "$SYS", creds: "/etc/leaf/none.creds", hub: true }\n'
        "    {}\n"
        "  ]\n}\naccounts { SALES: {} }\n"
    ),
    "leafnodes_websocket": (
        'leaf { reconnect_interval: "250ms", remotes: [\n'
        '  { urls: ["ws://hub:8080", "wss://u:p@hub.example:443/nats"], dont_randomize: true }\n'
        "] }\n"
    ),
    "leafnodes_nkey": (
        "leafnodes { remotes: [ { url: nats://hub, seed: "
        + nkeys.encode_seed(bytes(range(32)), nkeys.PREFIX_BYTE_USER).decode()
        + " } ] }\n"
    ),
}

INVALID_SYNTAX = {
    "unclosed_block": "authorization {\n  user: a\n",
    "three_words": "port 4222 extra\n",
    "unclosed_string": 'server_name: "abc\n',
    "bad_escape": 'server_name: "a\\qb"\n',
    "value_on_next_line": "port:\n  4222\n",
    "key_without_value": "port\n",
    "double_comma": "server_tags: [a,,b]\n",
    "leading_comma": "server_tags: [,a]\n",
    "float_without_leading_digit": "ping_max: .5\n",
    "float_with_garbage": "ping_max: 1.5x\n",
    "ip_with_garbage": "listen: 1.2.3.4abc\n",
    "negative_non_number": "server_name: -foo\n",
    "partial_date": "server_name: 202-01-01\n",
    "separator_as_key": "authorization { : 1 }\n",
    "undefined_variable": "port: $JETPORT_SURELY_UNDEFINED_VARIABLE\n",
    "integer_overflow": "max_pending: 9223372036854775808\n",
    "bad_include": "include\n",
    "leafnodes_unclosed_remotes": 'leafnodes {\n  remotes: [\n    { url: "nats://h" }\n}\n',
    "leafnodes_unclosed_url": 'leafnodes {\n  remotes: [ { url: "nats://h } ]\n}\n',
    "leafnodes_separator_as_key": 'leafnodes {\n  remotes: [ { : "nats://h" } ]\n}\n',
}

#: Configs both servers read and refuse for what a leafnodes block says.
INVALID_LEAFNODES = {
    "unknown_remote_key": 'leafnodes { remotes: [ { url: "nats://h", colour: red } ] }\n',
    "bad_url": 'leafnodes { remotes: [ { url: "nats://h:abc" } ] }\n',
    "url_number": "leafnodes { remotes: [ { url: 5 } ] }\n",
    "remotes_not_array": 'leafnodes { remotes: { url: "nats://h" } }\n',
    "remote_not_block": 'leafnodes { remotes: [ "nats://h" ] }\n',
    "bad_deny_subject": 'leafnodes { remotes: [ { deny_imports: "foo..bar" } ] }\n',
    "bad_seed": "leafnodes { remotes: [ { nkey: SUBAD } ] }\n",
    "account_seed": (
        "leafnodes { remotes: [ { nkey: "
        + nkeys.encode_seed(bytes(32), nkeys.PREFIX_BYTE_ACCOUNT).decode()
        + " } ] }\n"
    ),
    "creds_and_nkey": (
        'leafnodes { remotes: [ { creds: "/u.creds", nkey: '
        + nkeys.encode_seed(bytes(32), nkeys.PREFIX_BYTE_USER).decode()
        + " } ] }\n"
    ),
    "tls_cert_without_key": 'leafnodes { remotes: [ { tls { cert_file: "c.pem" } } ] }\n',
    "unknown_block_key": "leafnodes { colour: red }\n",
    "bad_reconnect": 'leafnodes { reconnect: "5x" }\n',
}


def nats_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NATS_SERVER), "-t", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=path.parent,
    )


@needs_nats
@pytest.mark.parametrize("name", sorted(VALID_CONFIGS))
def test_valid_configs_agree_with_nats_server(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.conf"
    path.write_text(VALID_CONFIGS[name])
    result = nats_check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    from_config(load(path))


@needs_nats
def test_valid_include_agrees_with_nats_server(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "auth.conf").write_text("user: alice\npassword: secret\n")
    path = tmp_path / "main.conf"
    path.write_text("port: 4333\nauthorization {\n  include sub/auth.conf\n}\n")
    result = nats_check(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert from_config(load(path)).username == "alice"


@needs_nats
@pytest.mark.parametrize("name", sorted(INVALID_SYNTAX))
def test_invalid_syntax_rejected_by_both(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.conf"
    path.write_text(INVALID_SYNTAX[name])
    result = nats_check(path)
    assert result.returncode != 0, f"nats-server accepted {INVALID_SYNTAX[name]!r}"
    with pytest.raises(ConfError, match=rf"{path.name}:\d+: "):
        load(path)


@needs_nats
@pytest.mark.parametrize("name", sorted(INVALID_LEAFNODES))
def test_invalid_leafnodes_rejected_by_both(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.conf"
    path.write_text(INVALID_LEAFNODES[name])
    result = nats_check(path)
    assert result.returncode != 0, f"nats-server accepted {INVALID_LEAFNODES[name]!r}"
    with pytest.raises(OptionsError, match=rf"{path.name}:1: "):
        from_config(load(path))

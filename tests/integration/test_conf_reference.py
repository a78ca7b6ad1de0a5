"""The config format reader agrees with nats-server: texts it accepts pass
``nats-server -t``, and syntax it refuses nats-server refuses too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from jetport.core.config import from_config
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

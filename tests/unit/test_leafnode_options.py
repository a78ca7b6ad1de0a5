"""The ``leafnodes {}`` block, solicit side: remotes, their keys and aliases, URL
splitting, and refusals with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from natsjwt import Account, Keys, Operator

from jetport.core.config import Options, OptionsError, from_config, parse_args
from jetport.core.config.file import parse
from jetport.core.config.keys import TOP_LEVEL_KEYS
from jetport.core.config.leafnode import (
    DEFAULT_LEAF_PORT,
    LeafNodeOptions,
    LeafTlsOptions,
    LeafUrl,
    RemoteLeafOptions,
    split_leaf_url,
)

USER_SEED = Keys("U").seed


def opts_from(text: str) -> Options:
    return from_config(parse(text, "srv.conf"))


def leaf_from(text: str) -> LeafNodeOptions:
    leaf = opts_from(text).leafnode
    assert leaf is not None
    return leaf


def one_remote(body: str) -> str:
    """A config whose single remote is ``body``, written from line 4; an account SALES
    is defined after the block."""
    return f"leafnodes {{\n remotes: [\n  {{\n{body}\n  }}\n ]\n}}\naccounts {{ SALES: {{}} }}\n"


def remote_from(body: str) -> RemoteLeafOptions:
    (remote,) = leaf_from(one_remote(body)).remotes
    return remote


def error_from(text: str) -> str:
    with pytest.raises(OptionsError) as info:
        opts_from(text)
    return str(info.value)


def remote_error(body: str) -> str:
    return error_from(one_remote(body))


# -- defaults ---------------------------------------------------------------------------


def test_no_block_means_no_leafnode_options() -> None:
    assert opts_from("port: 4222").leafnode is None


def test_empty_block_defaults() -> None:
    assert leaf_from("leafnodes {}") == LeafNodeOptions(reconnect=1.0, remotes=[])


def test_remote_defaults_match_nats_server() -> None:
    remote = remote_from('url: "nats-leaf://hub:7422"')
    assert remote == RemoteLeafOptions(urls=["nats-leaf://hub:7422"])
    assert remote.account == "$G"
    assert (remote.credentials, remote.nkey, remote.tls) == (None, None, None)
    assert (remote.deny_imports, remote.deny_exports) == ([], [])
    assert not remote.no_randomize and not remote.hub
    assert remote.where == "srv.conf:4"


def test_leaf_is_an_alias_of_the_block() -> None:
    assert len(leaf_from('leaf { remotes: [ {url: "nats://h"} ] }').remotes) == 1
    assert "leaf" in TOP_LEVEL_KEYS.handlers and "leafnodes" in TOP_LEVEL_KEYS.handlers


def test_an_empty_remote_is_kept_with_nothing_to_dial() -> None:
    (remote,) = leaf_from("leafnodes { remotes: [ {} ] }").remotes
    assert remote.urls == [] and remote.where == "srv.conf:1"


# -- reconnect ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["reconnect", "reconnect_delay", "reconnect_interval"])
@pytest.mark.parametrize(("value", "seconds"), [('"5s"', 5.0), ('"250ms"', 0.25), ("5", 5.0),
                                                ("2.5", 2.5), ('"0s"', 1.0), ("0", 1.0)])
def test_reconnect_and_its_aliases(key: str, value: str, seconds: float) -> None:
    """A bare number is seconds; zero means the default, as in nats-server."""
    assert leaf_from(f"leafnodes {{ {key}: {value} }}").reconnect == seconds


@pytest.mark.parametrize(("value", "message"), [
    ('"5x"', 'srv.conf:2: error parsing reconnect: unknown unit'),
    ('"-1s"', "srv.conf:2: reconnect cannot be negative"),
    ("true", "srv.conf:2: 'reconnect' expects a duration"),
])
def test_bad_reconnect_is_refused_at_its_line(value: str, message: str) -> None:
    assert error_from(f"leafnodes {{\n reconnect: {value}\n}}").startswith(message)


# -- each remote key ------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "attr", "expected"), [
    ('url: "nats://a:1"', "urls", ["nats://a:1"]),
    ('urls: ["nats://a:1", "tls://b:2"]', "urls", ["nats://a:1", "tls://b:2"]),
    ('url: ["nats://a:1", "nats://b:2"]', "urls", ["nats://a:1", "nats://b:2"]),
    ('urls: "nats://a:1"', "urls", ["nats://a:1"]),
    ('url: "  nats://a:1  "', "urls", ["nats://a:1"]),
    ("account: SALES", "account", "SALES"),
    ("local: SALES", "account", "SALES"),
    ('account: ""', "account", "$G"),
    ('credentials: "/etc/leaf/user.creds"', "credentials", "/etc/leaf/user.creds"),
    ('creds: "./user.creds"', "credentials", "./user.creds"),
    # ids of their own: the seed is new in every run, and parallel workers must
    # collect the same tests
    pytest.param(f"nkey: {USER_SEED}", "nkey", USER_SEED, id="nkey"),
    pytest.param(f"seed: {USER_SEED}", "nkey", USER_SEED, id="seed"),
    ('deny_imports: "a.>"', "deny_imports", ["a.>"]),
    ('deny_import: ["a.>", "b.*.c"]', "deny_imports", ["a.>", "b.*.c"]),
    ('deny_exports: ">"', "deny_exports", [">"]),
    ('deny_export: ["x", "y.*"]', "deny_exports", ["x", "y.*"]),
    ("no_randomize: true", "no_randomize", True),
    ("dont_randomize: true", "no_randomize", True),
    ("hub: true", "hub", True),
    ("hub: false", "hub", False),
])
def test_remote_keys_and_aliases(body: str, attr: str, expected: object) -> None:
    assert getattr(remote_from(body), attr) == expected


def test_keys_match_case_insensitively() -> None:
    remote = remote_from('URLS: ["nats://a"]\nAccount: SALES\nHub: true')
    assert (remote.urls, remote.account, remote.hub) == (["nats://a"], "SALES", True)


def test_a_url_string_adds_and_a_list_replaces() -> None:
    """nats-server's order: ``url`` strings accumulate, a list starts over."""
    assert remote_from('url: "nats://a"\nurl: "nats://b"').urls == ["nats://b"]
    assert remote_from('url: "nats://a"\nurls: "nats://b"').urls == ["nats://a", "nats://b"]
    assert remote_from('url: "nats://a"\nurls: ["nats://b"]').urls == ["nats://b"]


def test_several_remotes_keep_their_order_and_lines() -> None:
    leaf = leaf_from('leafnodes {\n remotes [\n  {url: "nats://a"}\n  {urls: ["ws://b"], '
                     'account: "$SYS"}\n ]\n}')
    assert [r.urls for r in leaf.remotes] == [["nats://a"], ["ws://b"]]
    assert [r.account for r in leaf.remotes] == ["$G", "$SYS"]
    assert [r.where for r in leaf.remotes] == ["srv.conf:3", "srv.conf:4"]


def test_credentials_expand_a_leading_tilde(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/leaf")
    assert remote_from('creds: "~/nats/u.creds"').credentials == "/home/leaf/nats/u.creds"
    assert remote_from('creds: "~u.creds"').credentials == "/home/leaf/u.creds"
    assert remote_from('creds: "./a/../u.creds"').credentials == "./a/../u.creds"


def test_credentials_file_need_not_exist_while_reading(tmp_path: Path) -> None:
    """nats-server reads the file when it connects, not when it reads the config."""
    missing = tmp_path / "none.creds"
    assert remote_from(f'creds: "{missing}"').credentials == str(missing)


def test_variables_in_a_remote() -> None:
    remote = leaf_from('HUB: "nats://hub:7422"\nleafnodes { remotes: [ {url: $HUB} ] }').remotes
    assert remote[0].urls == ["nats://hub:7422"]


# -- URL splitting ------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("nats-leaf://hub:7422", LeafUrl("nats-leaf", "hub", 7422)),
    ("nats://hub", LeafUrl("nats", "hub", DEFAULT_LEAF_PORT)),
    ("nats://hub:", LeafUrl("nats", "hub", 7422)),
    ("tls://10.0.0.1:4443", LeafUrl("tls", "10.0.0.1", 4443)),
    ("NATS-LEAF://Hub:1", LeafUrl("nats-leaf", "Hub", 1)),
    ("ws://hub:8080", LeafUrl("ws", "hub", 8080)),
    ("wss://hub.example/nats", LeafUrl("wss", "hub.example", 7422, path="/nats")),
    ("nats://[::1]:4222", LeafUrl("nats", "::1", 4222)),
    ("nats://[::1]", LeafUrl("nats", "::1", 7422)),
    ("nats-leaf://user:pass@hub:7422", LeafUrl("nats-leaf", "hub", 7422, "user", "pass")),
    ("nats-leaf://token@hub", LeafUrl("nats-leaf", "hub", 7422, "token", None)),
    ("nats-leaf://user:@hub", LeafUrl("nats-leaf", "hub", 7422, "user", "")),
    ("nats://u%40x:p%3Aw@hub", LeafUrl("nats", "hub", 7422, "u@x", "p:w")),
    ("nats://u:p@@hub", LeafUrl("nats", "hub", 7422, "u", "p@")),
    ("nats://hub:7422?x=1#top", LeafUrl("nats", "hub", 7422)),
    ("  nats://hub  ", LeafUrl("nats", "hub", 7422)),
])
def test_split_leaf_url(url: str, expected: LeafUrl) -> None:
    assert split_leaf_url(url) == expected


@pytest.mark.parametrize(("url", "reason"), [
    ("nats://hub:abc", 'invalid port ":abc" after host'),
    ("nats://hub:-1", 'invalid port ":-1" after host'),
    ("nats://[::1", "missing ']' in host"),
    ("nats://a b", 'invalid character " " in host name'),
    ("nats://%41hub", "invalid URL escape in host name"),
    ("nats://u:p%zz@hub", "invalid URL escape"),
    ("nats://u:p w@hub", "invalid userinfo"),
    ("://hub", "missing protocol scheme"),
    ("1nats://hub", "first path segment in URL cannot contain colon"),
    ("nats://", "missing host"),
    ("hub:7422", "missing host"),
    ("", "missing host"),
    ("nats://hub\x01", "invalid control character"),
])
def test_split_leaf_url_refuses(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        split_leaf_url(url)


def test_bad_url_is_refused_at_its_line() -> None:
    assert remote_error('urls: ["nats://a", "nats://hub:abc"]') == (
        'srv.conf:4: error parsing leafnode url ["nats://hub:abc"]: invalid port ":abc" after host'
    )


@pytest.mark.parametrize("value", ["5", "[1]", "{a: 1}"])
def test_url_of_the_wrong_type(value: str) -> None:
    assert remote_error(f"url: {value}").startswith(
        "srv.conf:4: Expected remote leafnode url to be an array or string, got ")


def test_websocket_schemes() -> None:
    assert [split_leaf_url(u).websocket for u in ("ws://h", "WSS://h", "nats://h", "tls://h")] \
        == [True, True, False, False]


@pytest.mark.parametrize("urls", [
    '["ws://a:1", "wss://b:2"]',
    '["nats://a", "tls://b", "nats-leaf://c"]',
])
def test_one_kind_of_url_per_remote_is_accepted(urls: str) -> None:
    assert len(remote_from(f"urls: {urls}").urls) in (2, 3)


def test_mixing_websocket_and_plain_urls_is_refused() -> None:
    """nats-server's message, password hidden and port filled in as it shows them."""
    assert remote_error('hub: true\nurls: ["wss://u:secret@hub:443", "nats://hub"]') == (
        "srv.conf:5: remote leaf node configuration cannot have a mix of websocket and "
        'non-websocket urls: ["wss://u:xxxxx@hub:443" "nats://hub:7422"]'
    )


# -- credentials, nkey ----------------------------------------------------------------------


def test_credentials_and_nkey_are_exclusive() -> None:
    assert remote_error(f'url: "nats://h"\nnkey: {USER_SEED}\ncreds: "/u.creds"') == (
        "srv.conf:6: Remote leafnode can not have both creds and nkey defined"
    )


@pytest.mark.parametrize("seed", [
    "SUBAD",
    Keys("A").seed,  # an account's seed, not a user's
    Keys("U").public_key,
    USER_SEED[:10] + ("A" if USER_SEED[10] != "A" else "B") + USER_SEED[11:],  # bad checksum
], ids=["short", "account-seed", "public-key", "bad-checksum"])
def test_nkey_must_be_a_user_seed(seed: str) -> None:
    message = remote_error(f"nkey: {seed}")
    assert message == ('srv.conf:4: Remote leafnode nkey is not a valid seed '
                       '(a user seed starts with "SU")')
    assert seed not in message


# -- deny lists -------------------------------------------------------------------------------


@pytest.mark.parametrize("subject", ["foo..bar", "a.>.b", "", ".a", "a b"])
def test_bad_subject_in_a_deny_list(subject: str) -> None:
    assert remote_error(f'deny_exports: ["ok", "{subject}"]') == (
        f'srv.conf:4: subject "{subject}" is not a valid subject'
    )


@pytest.mark.parametrize("value", ["5", "[1, 2]", "{allow: a}"])
def test_deny_list_of_the_wrong_type(value: str) -> None:
    assert remote_error(f"deny_imports: {value}").startswith(
        "srv.conf:4: Expected subject permissions to be a subject, or array of subjects, got ")


# -- tls ----------------------------------------------------------------------------------------


def test_remote_tls_block() -> None:
    remote = remote_from('url: "tls://h"\ntls {\n cert_file: c.pem\n key_file: k.pem\n'
                         ' ca_file: ca.pem\n timeout: 3\n min_version: "1.3"\n verify: true\n}')
    assert remote.tls == LeafTlsOptions("c.pem", "k.pem", "ca.pem", 3.0, "1.3")


def test_an_empty_tls_block_turns_tls_on_with_defaults() -> None:
    remote = remote_from('url: "nats://h"\ntls {}')
    assert remote.tls == LeafTlsOptions(timeout=2.0)
    assert remote_from('tls { timeout: 0 }').tls == LeafTlsOptions(timeout=2.0)


@pytest.mark.parametrize(("body", "message"), [
    ("tls { cert_file: c.pem }", "srv.conf:4: missing 'key_file' in TLS configuration"),
    ("tls { key_file: k.pem }", "srv.conf:4: missing 'cert_file' in TLS configuration"),
    ("tls {\n colour: red\n}", 'srv.conf:5: unknown field "leafnodes.remotes.tls.colour"'),
    ("tls {\n insecure: true\n}",
     'srv.conf:5: "leafnodes.remotes.tls.insecure" is not supported by Jetport '
     "(this TLS option)"),
    ('tls {\n min_version: "1.0"\n}',
     "srv.conf:5: error parsing tls config: unsupported TLS version: TLS 1.0"),
    ("tls: true", "srv.conf:4: 'tls' expects a block { ... }, got True"),
])
def test_bad_remote_tls(body: str, message: str) -> None:
    assert remote_error(body) == message


# -- accounts ----------------------------------------------------------------------------------


def test_remote_account_may_be_defined_later_in_the_file() -> None:
    opts = opts_from('leafnodes { remotes: [ {url: "nats://h", account: SALES} ] }\n'
                     "accounts { SALES: {} }\n")
    assert opts.leafnode is not None and opts.leafnode.remotes[0].account == "SALES"


def test_remote_account_must_exist() -> None:
    assert remote_error('url: "nats://h"\naccount: NOPE') == (
        'srv.conf:4: cannot find local account "NOPE" specified in leafnode remote'
    )


def test_system_account_exists_unless_disabled() -> None:
    assert remote_from('account: "$SYS"').account == "$SYS"
    message = error_from('no_system_account: true\nleafnodes { remotes: [ {account: "$SYS"} ] }')
    assert message == 'srv.conf:2: cannot find local account "$SYS" specified in leafnode remote'


def test_operator_mode_binds_remotes_to_account_keys() -> None:
    operator = Operator()
    account = Account(operator)
    head = f"operator: {operator.jwt}\nresolver: MEMORY\n"
    ok = opts_from(head + f'leafnodes {{ remotes: [ {{account: {account.public_key}}} ] }}')
    assert ok.leafnode is not None and ok.leafnode.remotes[0].account == account.public_key
    assert error_from(head + 'leafnodes { remotes: [ {url: "nats://h"} ] }').startswith(
        "srv.conf:3: operator mode requires account nkeys in remotes")


# -- refusals -----------------------------------------------------------------------------------


def test_refusal_texts_name_file_and_line() -> None:
    message = error_from('port: 1\nleafnodes {\n listen: 7422\n bogus: 1\n remotes: [\n  {\n'
                         '   url: "nats://h"\n   compression: s2_auto\n   colour: red\n  }\n ]\n}')
    assert message.splitlines() == [
        'srv.conf:3: "leafnodes.listen" is not supported by Jetport (leafnode listener)',
        'srv.conf:4: unknown field "leafnodes.bogus"',
        'srv.conf:8: "leafnodes.remotes.compression" is not supported by Jetport '
        "(leafnode compression)",
        'srv.conf:9: unknown field "leafnodes.remotes.colour"',
    ]


@pytest.mark.parametrize("key", [
    "listen", "port", "host", "net", "advertise", "leafnode_advertise", "no_advertise",
    "authorization", "min_version", "minimum_version", "tls", "compression",
    "isolate_leafnode_interest", "isolate", "write_deadline", "write_timeout", "dial_timeout",
])
def test_block_keys_jetport_does_not_support_yet(key: str) -> None:
    """The leafnode listener's keys, the block's own ``tls`` among them: nats-server uses
    it for the connections it accepts, never for those it dials."""
    message = error_from(f"leafnodes {{\n {key}: 1\n}}")
    assert message.startswith(f'srv.conf:2: "leafnodes.{key}" is not supported by Jetport (')


@pytest.mark.parametrize("key", [
    "compression", "ws_compress", "ws_compression", "websocket_compress",
    "websocket_compression", "ws_no_masking", "websocket_no_masking", "first_info_timeout",
    "dial_timeout", "jetstream_cluster_migrate", "js_cluster_migrate", "proxy", "disabled",
    "ignore_discovered_servers", "isolate", "isolate_leafnode_interest", "request_isolation",
])
def test_remote_keys_jetport_does_not_support_yet(key: str) -> None:
    assert remote_error(f"{key}: true").startswith(
        f'srv.conf:4: "leafnodes.remotes.{key}" is not supported by Jetport (')


@pytest.mark.parametrize("key", ["user", "password", "token", "name", "reconnect", "tls_first"])
def test_keys_nats_server_does_not_know_are_unknown(key: str) -> None:
    assert remote_error(f"{key}: 1") == f'srv.conf:4: unknown field "leafnodes.remotes.{key}"'


def test_remotes_must_be_an_array_of_blocks() -> None:
    assert error_from('leafnodes {\n remotes: {url: "nats://h"}\n}').startswith(
        "srv.conf:2: Expected remotes field to be an array, got ")
    assert error_from('leafnodes {\n remotes: ["nats://h"]\n}') == (
        "srv.conf:2: Expected remote leafnode entry to be a map/struct, got 'nats://h'")


def test_every_remote_reports_its_problems() -> None:
    message = error_from('leafnodes {\n remotes: [\n  {url: "nats://a", hub: 1}\n'
                         '  {url: "nats://b"}\n  {url: "ws://c", bad: 1}\n ]\n}')
    assert message.splitlines() == [
        "srv.conf:3: 'hub' expects a boolean, got 1",
        'srv.conf:5: unknown field "leafnodes.remotes.bad"',
    ]


# -- through the command line ---------------------------------------------------------------


def test_config_check_reads_the_block(tmp_path: Path) -> None:
    conf = tmp_path / "leaf.conf"
    conf.write_text('leafnodes {\n  remotes = [ { urls: ["nats-leaf://u:p@hub:7422"] } ]\n}\n')
    opts = parse_args(["-t", "-c", str(conf)])
    assert opts.action == "test_config"
    assert opts.leafnode is not None and opts.leafnode.remotes[0].urls == [
        "nats-leaf://u:p@hub:7422"]
    conf.write_text("leafnodes {\n  remotes = [ { colour: red } ]\n}\n")
    with pytest.raises(OptionsError, match=rf'{conf}:2: unknown field "leafnodes.remotes.colour"'):
        parse_args(["-t", "-c", str(conf)])

"""The nats-server config format reader; its agreement with nats-server itself
(``nats-server -t``) is checked in tests/integration/test_conf_reference.py."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from jetport.core.config import from_config
from jetport.core.config.file import ConfDict, ConfError, load, parse


def one(text: str) -> object:
    """The value of the only key in ``text``."""
    conf = parse(text)
    assert len(conf) == 1
    return next(iter(conf.values()))


# -- separators, blocks, arrays, comments ---------------------------------------------


@pytest.mark.parametrize(
    "text", ["port: 4222", "port = 4222", "port 4222", "port:4222", "port=4222"]
)
def test_key_separators(text: str) -> None:
    assert parse(text) == {"port": 4222}


def test_separator_may_be_followed_by_spaces_and_semicolon() -> None:
    assert parse("port   =   4222;\nhost : 'h' ;") == {"port": 4222, "host": "h"}


def test_blocks_with_and_without_separator() -> None:
    conf = parse("a { x: 1 }\nb: { y = 2 }\nc = {z 3}\nd {\n  e {\n    f: true\n  }\n}\n")
    assert conf == {"a": {"x": 1}, "b": {"y": 2}, "c": {"z": 3}, "d": {"e": {"f": True}}}
    assert isinstance(conf["d"], ConfDict) and isinstance(conf["d"]["e"], ConfDict)


def test_block_entries_separated_by_commas_semicolons_or_newlines() -> None:
    assert one("b { x: 1, y: 2; z: 3\n w: 4 }") == {"x": 1, "y": 2, "z": 3, "w": 4}


def test_block_value_may_start_on_next_line() -> None:
    assert one("b {\n  user:\n    alice\n}") == {"user": "alice"}


def test_empty_block() -> None:
    assert parse("jetstream {}") == {"jetstream": {}}


def test_arrays_with_commas_newlines_and_trailing_comma() -> None:
    assert one("a: [1, 2, 3]") == [1, 2, 3]
    assert one("a: [\n  'x'\n  \"y\"\n  z\n]") == ["x", "y", "z"]
    assert one("a: [1, 2,]") == [1, 2]
    assert one("a: []") == []
    assert one("a: [[1], {b: 2}, [x, y]]") == [[1], {"b": 2}, ["x", "y"]]


def test_comments_of_both_kinds() -> None:
    text = """
    # hash comment
    // slash comment
    port: 4222 # trailing hash
    host: "h" // trailing slashes
    b {
      # inside a block
      x: 1 // after a value
    }
    a: [
      1, # inside an array
      2  // here too
    ]
    """
    assert parse(text) == {"port": 4222, "host": "h", "b": {"x": 1}, "a": [1, 2]}


def test_hash_inside_a_bare_string_is_not_a_comment() -> None:
    assert one("name: bar#baz") == "bar#baz"


def test_json_style_document() -> None:
    assert parse('{ "port": 4222, "debug": true, "a": ["x"] }') == {
        "port": 4222,
        "debug": True,
        "a": ["x"],
    }


def test_top_level_entries_on_one_line_separated_by_commas() -> None:
    assert parse("port: 4222, debug: true") == {"port": 4222, "debug": True}


def test_quoted_keys() -> None:
    assert parse("\"my key\": 1\n'other' = 2") == {"my key": 1, "other": 2}


def test_keys_keep_their_case() -> None:
    assert parse("Port: 1\nport: 2") == {"Port": 1, "port": 2}


def test_later_definition_wins() -> None:
    conf = parse("port: 1\nport: 2\n")
    assert conf == {"port": 2}
    assert conf.where("port") == "<string>:2"


# -- scalar values ------------------------------------------------------------------


def test_strings() -> None:
    assert one('s: "double \\"quoted\\" \\t\\n\\r\\\\ \\x41"') == 'double "quoted" \t\n\r\\ A'
    assert one("s: 'single \\n stays'") == "single \\n stays"
    assert one("s: bare-string_1.x") == "bare-string_1.x"
    assert one('s: ""') == ""
    assert one('s: "multi\nline"') == "multi\nline"


def test_bare_values_that_look_like_numbers_stay_strings() -> None:
    assert one("token: 3secret") == "3secret"
    assert one("t: 12:30") == "12:30"
    assert one("v: 1kx") == "1kx"
    assert one("v: 1e5") == "1e5"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("listen: 127.0.0.1:4222", "127.0.0.1:4222"),
        ("listen: 0.0.0.0:-1", "0.0.0.0:-1"),
        ("ip: 10.0.0.1", "10.0.0.1"),
        ("listen: localhost:4222", "localhost:4222"),
        ("listen: :4222", ":4222"),
        ("url: nats://host:4222", "nats://host:4222"),
    ],
)
def test_address_values_are_strings(text: str, value: str) -> None:
    assert one(text) == value


def test_numbers() -> None:
    assert one("n: 42") == 42
    assert one("n: -42") == -42
    assert one("n: 0") == 0
    assert one("f: 1.5") == 1.5
    assert one("f: -0.25") == -0.25


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("Yes", True),
        ("on", True),
        ("false", False),
        ("False", False),
        ("no", False),
        ("off", False),
        ("OFF", False),
    ],
)
def test_booleans(word: str, value: bool) -> None:
    assert one(f"b: {word}") is value


def test_quoted_boolean_words_are_strings() -> None:
    assert one('b: "true"') == "true"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1K", 1000),
        ("1k", 1000),
        ("1KB", 1024),
        ("1kb", 1024),
        ("1Ki", 1024),
        ("1KiB", 1024),
        ("2M", 2_000_000),
        ("2MB", 2 * 1024**2),
        ("2mib", 2 * 1024**2),
        ("3G", 3 * 1000**3),
        ("3GB", 3 * 1024**3),
        ("1T", 1000**4),
        ("1TB", 1024**4),
        ("1P", 1000**5),
        ("1PiB", 1024**5),
        ("1E", 1000**6),
        ("1EB", 1024**6),
        ("-1K", -1000),
    ],
)
def test_size_suffixes(text: str, value: int) -> None:
    assert one(f"size: {text}") == value


def test_size_suffix_inside_block_and_array() -> None:
    assert parse("js { max_mem: 1G, sizes: [1K, 1KB] }") == {
        "js": {"max_mem": 1000**3, "sizes": [1000, 1024]}
    }


def test_timestamp() -> None:
    assert one("d: 2020-01-02T03:04:05Z") == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_raw_block() -> None:
    assert one("text: (\nline one\n  line two\n)\n") == "\nline one\n  line two\n"


def test_bcrypt_hashes_are_not_variables() -> None:
    assert one("password: $2a$11$abcdefghijklmnop") == "$2a$11$abcdefghijklmnop"


# -- where ------------------------------------------------------------------------------


def test_where_reports_file_and_line() -> None:
    conf = parse("\n# comment\nport: 4222\nauthorization {\n  user: a\n}\n", "srv.conf")
    assert conf.where("port") == "srv.conf:3"
    assert conf.where("authorization") == "srv.conf:4"
    assert conf["authorization"].where("user") == "srv.conf:5"


# -- include --------------------------------------------------------------------------


def test_include_relative_to_including_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "auth.conf").write_text("user: alice\npassword: secret\n")
    (tmp_path / "conf.d" / "main.conf").write_text(
        "port: 4333\nauthorization {\n  include auth.conf\n}\ninclude 'more.conf'\n"
    )
    (tmp_path / "conf.d" / "more.conf").write_text("\n\ndebug: true\n")
    conf = load(tmp_path / "conf.d" / "main.conf")
    assert conf == {
        "port": 4333,
        "authorization": {"user": "alice", "password": "secret"},
        "debug": True,
    }
    assert conf.where("debug") == f"{tmp_path / 'conf.d' / 'more.conf'}:3"
    assert conf["authorization"].where("password") == f"{tmp_path / 'conf.d' / 'auth.conf'}:2"


def test_include_with_double_quotes_and_semicolon(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("x: 1")
    (tmp_path / "main.conf").write_text('include "a.conf"; y: 2\n')
    assert load(tmp_path / "main.conf") == {"x": 1, "y": 2}


def test_absolute_include_path_is_still_relative_like_nats_server(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "x.conf").write_text("x: 1\n")
    (tmp_path / "main.conf").write_text("include /etc/x.conf\n")
    assert load(tmp_path / "main.conf") == {"x": 1}


def test_include_missing_file_names_the_including_line(tmp_path: Path) -> None:
    (tmp_path / "main.conf").write_text("port: 1\ninclude nope.conf\n")
    with pytest.raises(ConfError, match=r"main\.conf:2") as info:
        load(tmp_path / "main.conf")
    assert "nope.conf" in str(info.value)


def test_syntax_error_in_included_file_names_that_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.conf").write_text("ok: 1\nbroken {\n  x: 1\n")
    (tmp_path / "main.conf").write_text("\ninclude bad.conf\n")
    with pytest.raises(ConfError) as info:
        load(tmp_path / "main.conf")
    message = str(info.value)
    assert f"{tmp_path / 'bad.conf'}:4" in message
    assert "main.conf:2" in message


def test_include_cycle_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("include b.conf\n")
    (tmp_path / "b.conf").write_text("include a.conf\n")
    with pytest.raises(ConfError, match="include cycle"):
        load(tmp_path / "a.conf")


def test_included_file_does_not_see_the_includers_variables(tmp_path: Path) -> None:
    (tmp_path / "inc.conf").write_text("y: $X_ONLY_IN_MAIN\n")
    (tmp_path / "main.conf").write_text("X_ONLY_IN_MAIN: 1\ninclude inc.conf\n")
    with pytest.raises(ConfError, match="X_ONLY_IN_MAIN"):
        load(tmp_path / "main.conf")


def test_key_named_include_with_separator_is_a_plain_key() -> None:
    assert parse("include: 1") == {"include": 1}


def test_load_missing_file() -> None:
    with pytest.raises(ConfError, match="cannot open"):
        load("/nonexistent/jetport.conf")


# -- variables --------------------------------------------------------------------------


def test_variables_are_block_scoped() -> None:
    conf = parse("A: 1\nb {\n  c: $A\n  A: 2\n  d: $A\n}\ne: $A\n")
    assert conf["b"] == {"c": 1, "A": 2, "d": 2}
    assert conf["e"] == 1


def test_variable_can_hold_a_block_or_array() -> None:
    conf = parse("auth = { user: a }\nauthorization: $auth\nlist = [1, 2]\nx: $list\n")
    assert conf["authorization"] == {"user": "a"}
    assert conf["x"] == [1, 2]


def test_variable_from_environment_is_parsed_like_a_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JETPORT_TEST_PORT", "4333")
    monkeypatch.setenv("JETPORT_TEST_SIZE", "1MB")
    monkeypatch.setenv("JETPORT_TEST_NAME", "hub-1")
    conf = parse("port: $JETPORT_TEST_PORT\nmax: $JETPORT_TEST_SIZE\nname: $JETPORT_TEST_NAME")
    assert conf == {"port": 4333, "max": 1024 * 1024, "name": "hub-1"}


def test_config_variable_shadows_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JETPORT_TEST_V", "from-env")
    assert parse("JETPORT_TEST_V: local\nx: $JETPORT_TEST_V")["x"] == "local"


def test_undefined_variable_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JETPORT_TEST_UNDEFINED", raising=False)
    with pytest.raises(ConfError, match=r"t\.conf:3: .*JETPORT_TEST_UNDEFINED"):
        parse("a: 1\n\nb: $JETPORT_TEST_UNDEFINED\n", "t.conf")


def test_self_referencing_environment_variable_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JETPORT_TEST_LOOP", "$JETPORT_TEST_LOOP")
    with pytest.raises(ConfError, match="JETPORT_TEST_LOOP"):
        parse("x: $JETPORT_TEST_LOOP")


def test_used_variables_are_marked() -> None:
    conf = parse("TOKEN: s3cret\nUNUSED: 1\nauthorization { token: $TOKEN }")
    assert conf.used_as_variable("TOKEN")
    assert not conf.used_as_variable("UNUSED")
    assert not conf.used_as_variable("authorization")


# -- syntax errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("port: 4222\nfoo bar baz\n", 2),
        ("a {\n  b: 1\n", 3),
        ("a: [1, 2\n", 2),
        ('s: "unterminated\n', 1),
        ("s: 'unterminated\n", 1),
        ('s: "bad \\q escape"', 1),
        ("port\n", 1),
        ("x: [1,,2]", 1),
        ("x: [,1]", 1),
        ("f: .5", 1),
        ("f: 1.x", 1),
        ("f: 1.5x", 1),
        ("ip: 1.2.3.4abc", 1),
        ("n: -x", 1),
        ("n: -12abc", 1),
        ("b { : 1 }", 1),
        ("b { x: 1 ]", 1),
        ("d: 2020-13-01T00:00:00Z", 1),
        ("d: 202-01-01", 1),
        ("\n\nport:\n  4222\n", 3),
        ("big: 9223372036854775808", 1),
        ("big: 10E", 1),
        ("n: 1kbib", 1),
        ("b { x }", 1),
        ("include\n", 1),
        ("text: (\nno closing paren\n", 1),
    ],
)
def test_syntax_errors_name_file_and_line(text: str, line: int) -> None:
    with pytest.raises(ConfError, match=rf"^bad\.conf:{line}: "):
        parse(text, "bad.conf")


def test_empty_and_comment_only_documents() -> None:
    assert parse("") == {}
    assert parse("# nothing\n// here\n\n") == {}


# -- inputs the fuzzing campaign found (tests/campaigns/fuzz.py): each is a ConfError ---


@pytest.mark.parametrize("text", [
    "port: " + "1" * 4301,  # past Python's int() digit limit
    "a: " + "[" * 1000,  # nested past the recursion limit
    "a {" * 400,
    'include "a\x00b"',  # NUL in a path
    "a: $\ud800",  # a lone surrogate (only possible through parse(text))
    'authorization { permissions { publish: "\ud800" } }',
])
def test_malformed_text_is_a_conf_error(text: str) -> None:
    with pytest.raises(ConfError):
        from_config(parse(text, "/tmp/fuzz.conf"))

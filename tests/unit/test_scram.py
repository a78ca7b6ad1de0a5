"""SCRAM-SHA-256/-512 (RFC 5802, RFC 7677): the sans-I/O exchange, and the credentials
the authenticator derives for it from the configured users."""

from __future__ import annotations

import base64

import pytest

from jetport.core.auth import Authenticator, AuthError, scram_credentials
from jetport.core.config import from_config
from jetport.core.config.file import parse
from jetport.core.scram import (
    Credentials,
    ScramClient,
    ScramError,
    ScramServer,
    credentials,
)

# RFC 7677, section 3: user "user", password "pencil".
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
RFC_CLIENT_FINAL = (b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")


def rfc_server() -> ScramServer:
    creds = credentials("SCRAM-SHA-256", "pencil", RFC_SALT, 4096)
    return ScramServer("SCRAM-SHA-256", lambda user: creds,
                       nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")


def test_rfc7677_vector_server_side() -> None:
    server = rfc_server()
    assert server.first(RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
    assert server.user == "user" and not server.verified
    assert server.final(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL
    assert server.verified


def test_rfc7677_vector_client_side() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO")
    assert client.first() == RFC_CLIENT_FIRST
    assert client.final(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
    client.check(RFC_SERVER_FINAL)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_round_trip_and_wrong_password(mechanism: str) -> None:
    creds = credentials(mechanism, "s3cret", b"salt-0123456789a")
    for password, ok in (("s3cret", True), ("wrong", False)):
        server = ScramServer(mechanism, lambda user: creds)
        client = ScramClient(mechanism, "alice", password)
        final = client.final(server.first(client.first()))
        if ok:
            client.check(server.final(final))
            assert server.verified and server.user == "alice"
        else:
            with pytest.raises(ScramError, match="proof"):
                server.final(final)
            assert not server.verified


def test_user_names_with_commas_and_equals_signs() -> None:
    creds = credentials("SCRAM-SHA-256", "pw", b"0123456789abcdef")
    server = ScramServer("SCRAM-SHA-256", lambda user: creds)
    client = ScramClient("SCRAM-SHA-256", "a,b=c", "pw")
    assert b"n=a=2Cb=3Dc," in client.first()
    client.check(server.final(client.final(server.first(client.first()))))
    assert server.user == "a,b=c"


@pytest.mark.parametrize("message", [
    b"p=tls-unique,,n=user,r=abc",   # channel binding
    b"x,,n=user,r=abc",              # bad GS2 flag
    b"n,,r=abc",                     # no user
    b"n,,n=user",                    # no nonce
    b"n,a=other,n=user,r=abc",       # authorization identity of someone else
    b"n,,m=ext,n=user,r=abc",        # mandatory extension
    b"n,,n=us=er,r=abc",             # bad saslname escape
    b"\xff,,n=user,r=abc",           # not UTF-8
    b"n=user,r=abc",                 # no GS2 header
])
def test_bad_client_first_messages(message: bytes) -> None:
    with pytest.raises(ScramError):
        rfc_server().first(message)


@pytest.mark.parametrize("message", [
    b"c=biws,r=rOprNGfwEbeRWgbNEkqOXXX,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    b"c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",    # channel binding data differs
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=!!",
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
])
def test_bad_client_final_messages(message: bytes) -> None:
    server = rfc_server()
    server.first(RFC_CLIENT_FIRST)
    with pytest.raises(ScramError):
        server.final(message)
    assert not server.verified


def test_steps_out_of_turn() -> None:
    server = rfc_server()
    with pytest.raises(ScramError):
        server.final(RFC_CLIENT_FINAL)
    server.first(RFC_CLIENT_FIRST)
    with pytest.raises(ScramError):
        server.first(RFC_CLIENT_FIRST)
    server.final(RFC_CLIENT_FINAL)
    with pytest.raises(ScramError):
        server.final(RFC_CLIENT_FINAL)


def test_client_refuses_a_server_that_does_not_know_the_password() -> None:
    client = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO")
    client.final(RFC_SERVER_FIRST)
    with pytest.raises(ScramError):
        client.check(b"v=" + base64.b64encode(b"\0" * 32))
    with pytest.raises(ScramError):
        client.check(b"e=invalid-proof")
    fresh = ScramClient("SCRAM-SHA-256", "user", "pencil", nonce="abc")
    with pytest.raises(ScramError, match="nonce"):
        fresh.final(b"r=other,s=c2FsdA==,i=4096")
    with pytest.raises(ScramError, match="iteration"):
        fresh.final(b"r=abcdef,s=c2FsdA==,i=99999999")


def test_unknown_mechanism() -> None:
    with pytest.raises(ScramError):
        ScramServer("SCRAM-SHA-1", lambda user: credentials("SCRAM-SHA-256", "", b"s"))


# -- the authenticator's users ---------------------------------------------------------

BCRYPT_PENCIL = "$2b$04$Fc8X1Rqpt3sbZJmPps62OOfjNIaVjeMTv0kmbRmHv21qy0t2i3zEm"  # "pencil"


def authenticator(users: str) -> Authenticator:
    return Authenticator(from_config(parse(f"authorization {{ users: [ {users} ] }}")))


def login(auth: Authenticator, user: str, password: str,
          mechanism: str = "SCRAM-SHA-256") -> tuple[ScramServer, bytes]:
    server = auth.scram_login(mechanism)
    assert server is not None
    client = ScramClient(mechanism, user, password)
    return server, client.final(server.first(client.first()))


def test_plain_password_users_log_in_with_their_permissions() -> None:
    auth = authenticator('{user: alice, password: pw, permissions: {publish: "a.>"}}')
    server, final = login(auth, "alice", "pw", "SCRAM-SHA-512")
    _, principal = auth.scram_finish(server, final, "MQTT")
    assert principal.user == "alice"
    assert principal.permissions is not None and principal.permissions.can_publish(b"a.b")
    assert not principal.permissions.can_publish(b"b")


def test_wrong_password_unknown_user_and_bcrypt_user_fail_alike() -> None:
    auth = authenticator(f'{{user: alice, password: pw}}, {{user: bob, password: '
                         f'"{BCRYPT_PENCIL}"}}')
    outcomes = []
    for user, password in (("alice", "nope"), ("nobody", "pw"), ("bob", "pencil")):
        server, final = login(auth, user, password)
        with pytest.raises(AuthError) as refused:
            auth.scram_finish(server, final, "MQTT")
        outcomes.append(str(refused.value))
    assert "bcrypt" in outcomes[2] and "plain-text" in outcomes[2]
    assert "bcrypt" not in outcomes[0] + outcomes[1]
    assert auth.failures["MQTT"] == 3


def test_made_up_credentials_look_like_real_ones() -> None:
    """A name that cannot log in gets a salt stable for the process, like a real user's,
    so server-first tells nobody which names exist."""
    secret = b"k" * 32
    real = scram_credentials("SCRAM-SHA-256", "alice", "pw", secret)
    made_up = scram_credentials("SCRAM-SHA-256", "nobody", None, secret)
    assert isinstance(made_up, Credentials)
    assert made_up.salt == scram_credentials("SCRAM-SHA-256", "nobody", None, secret).salt
    assert (len(made_up.salt), made_up.iterations) == (len(real.salt), real.iterations)
    bcrypt_user = scram_credentials("SCRAM-SHA-256", "bob", BCRYPT_PENCIL, secret)
    assert bcrypt_user.stored_key != credentials("SCRAM-SHA-256", BCRYPT_PENCIL,
                                                 bcrypt_user.salt).stored_key


def test_connection_types_apply_to_scram_logins() -> None:
    auth = authenticator('{user: web, password: pw, allowed_connection_types: ["MQTT_WS"]}')
    server, final = login(auth, "web", "pw")
    with pytest.raises(AuthError, match="connection type"):
        auth.scram_finish(server, final, "MQTT")


def test_scram_is_not_offered_without_named_users() -> None:
    assert Authenticator(from_config(parse("port: 4222"))).scram_login("SCRAM-SHA-256") is None
    assert Authenticator(from_config(parse("authorization { token: t }"))).scram_login(
        "SCRAM-SHA-256") is None
    assert authenticator("{user: a, password: b}").scram_login("SCRAM-SHA-1") is None

"""core.jwt: decoding NATS JWTs made with the nkeys package and the operator chain of trust."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from natsjwt import Account, Keys, Operator, User, b64, encode

from jetport.core import jwt, jwt_trust
from jetport.core.jwt import JwtError
from jetport.core.jwt_trust import Trust, read_operator_jwt

NONCE = b"nonce-1234567ab"


def chain(**account_claims):
    op = Operator()
    acc = Account(op, "A", **account_claims)
    return op, acc


def trust(op: Operator, *accounts: Account) -> Trust:
    return Trust([op.jwt], {a.public_key: a.jwt for a in accounts})


def login(t: Trust, user: User, **kw):
    return t.verify_user(user.jwt, NONCE, user.keys.sign(NONCE), **kw)


def test_valid_chain() -> None:
    op, acc = chain(limits={"conn": 5})
    user = User(acc, "bob", pub={"allow": ["foo.>"]}, resp={"max": 2, "ttl": 5_000_000_000})
    account, claims = login(trust(op, acc), user)
    assert account.subject == acc.public_key and account.name == "A"
    assert account.issuer == op.public_key
    assert account.limits.conn == 5 and account.limits.subs == -1
    assert claims.subject == user.public_key and claims.name == "bob"
    assert claims.issuer == acc.public_key and claims.issuer_account == ""
    assert claims.permissions.pub.allow == ("foo.>",)
    assert claims.permissions.resp == jwt.ClaimResponsePermission(2, 5_000_000_000)
    assert claims.subs == -1 and claims.payload == -1
    assert claims.nats["type"] == "user"
    assert claims.pub_allow == ("foo.>",) and claims.sub_allow == ()
    assert claims.resp == {"max": 2, "ttl": 5_000_000_000}


def test_decode_types_and_fields() -> None:
    op = Operator(signing_keys=1)
    acc = Account(op, "JS", limits={"mem_storage": 1024, "disk_storage": -1, "streams": 3})
    acc.revoke("U" + "A" * 55, 123)
    decoded_op = jwt.decode(op.jwt)
    assert isinstance(decoded_op, jwt.OperatorClaims)
    assert decoded_op.signing_keys == (op.signing_keys[0].public_key,)
    decoded = jwt.decode_account(acc.jwt)
    assert decoded.limits.jetstream_enabled() and decoded.limits.streams == 3
    assert decoded.revocations == {"U" + "A" * 55: 123}
    with pytest.raises(JwtError, match="not user"):
        jwt.decode_user(acc.jwt)


def test_tampered_payload_fails() -> None:
    _, acc = chain()
    user = User(acc)
    header, payload, sig = user.jwt.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["nats"]["pub"] = {"allow": [">"]}
    forged = f"{header}.{b64(json.dumps(body).encode())}.{sig}"
    with pytest.raises(JwtError, match="signature"):
        jwt.decode(forged)
    bad_sig = sig[:10] + ("B" if sig[10] != "B" else "C") + sig[11:]
    with pytest.raises(JwtError, match="signature"):
        jwt.decode(f"{header}.{payload}.{bad_sig}")
    with pytest.raises(JwtError, match="3 chunks"):
        jwt.decode(f"{header}.{payload}")


def test_header_checks() -> None:
    _, acc = chain()
    claims = {"sub": Keys("U").public_key, "iat": 1, "nats": {"type": "user", "version": 2}}
    assert jwt.decode(encode(claims, acc.keys, alg="ed25519")).subject == claims["sub"]
    with pytest.raises(JwtError, match="algorithm"):
        jwt.decode(encode(claims, acc.keys, alg="HS256"))


def test_wrong_issuer_kind_or_untrusted_operator() -> None:
    op, acc = chain()
    # A user JWT "signed" by a user key is well-formed but not acceptable.
    rogue = Keys("U")
    claims = {"sub": Keys("U").public_key, "nats": {"type": "user", "version": 2}}
    with pytest.raises(JwtError, match="may not sign"):
        jwt.decode(encode(claims, rogue))
    # An account signed by some other operator is not trusted.
    other = Account(Operator(), "X")
    t = trust(op, acc, other)
    with pytest.raises(JwtError, match="trusted operator"):
        t.account(other.public_key)
    with pytest.raises(JwtError, match="trusted operator"):
        login(t, User(other))
    # A user whose issuer is unrelated to the account it names is refused.
    stranger = Keys("A")
    user = User(acc, signed_by=stranger)
    with pytest.raises(JwtError, match="issuer is not known"):
        login(t, user)


def test_account_key_mismatch_and_unknown_account() -> None:
    op, acc = chain()
    other = Account(op, "B")
    t = Trust([op.jwt], {acc.public_key: other.jwt})
    with pytest.raises(JwtError, match="does not match"):
        t.account(acc.public_key)
    with pytest.raises(JwtError, match="not found"):
        t.account(Keys("A").public_key)


def test_account_signed_by_operator_signing_key() -> None:
    op = Operator(signing_keys=1)
    acc = Account(op, "A", signed_by=op.signing_keys[0])
    t = trust(op, acc)
    assert t.account(acc.public_key).issuer == op.signing_keys[0].public_key
    login(t, User(acc))
    strict = Operator(signing_keys=1, strict_signing_key_usage=True)
    direct = Account(strict, "D")
    with pytest.raises(JwtError, match="trusted operator"):
        trust(strict, direct).account(direct.public_key)


def test_user_signed_by_account_signing_key() -> None:
    op, acc = chain()
    sk = acc.add_signing_key()
    user = User(acc, "carl", signed_by=sk, sub={"allow": ["x"]})
    account, claims = login(trust(op, acc), user)
    assert claims.issuer == sk.public_key and claims.issuer_account == acc.public_key
    assert account.subject == acc.public_key
    assert claims.permissions.sub.allow == ("x",)
    # Without issuer_account the signing key is looked up as an account and not found.
    bare = User(acc, signed_by=sk)
    bare.nats.pop("issuer_account")
    with pytest.raises(JwtError, match="not found"):
        login(trust(op, acc), bare)


def test_user_signed_by_scoped_signing_key() -> None:
    op, acc = chain()
    template = {"pub": {"allow": ["app.{{name()}}.>", "acct.{{account-name()}}"]},
                "sub": {"allow": ["team.{{tag(team)}}"], "deny": ["secret"]}, "subs": 10}
    scoped = acc.add_signing_key(template, role="app")
    user = User(acc, "dave", signed_by=scoped, scoped=True, tags=["team:red", "team:blue"])
    t = trust(op, acc)
    account, claims = login(t, user)
    assert claims.permissions.pub.allow == ("app.dave.>", "acct.A")
    assert claims.permissions.sub.allow == ("team.red", "team.blue")
    assert claims.permissions.sub.deny == ("secret",)
    assert claims.subs == 10 and claims.payload == -1  # template defaults to no limit
    assert account.signing_keys[scoped.public_key].role == "app"
    # A scoped key's user may not carry its own permissions or limits.
    greedy = User(acc, "eve", signed_by=scoped, pub={"allow": [">"]})
    with pytest.raises(JwtError, match="scoped users"):
        login(t, greedy)
    # A tag macro with no matching tag leaves an allow list empty: everything denied.
    untagged = User(acc, "fay", signed_by=scoped, scoped=True)
    _, claims = login(t, untagged)
    assert claims.permissions.sub.allow == () and ">" in claims.permissions.sub.deny


def test_expired_user_and_account() -> None:
    op, acc = chain()
    now = time.time()
    user = User(acc, exp=int(now) - 1)
    with pytest.raises(JwtError, match="expired"):
        login(trust(op, acc), user)
    fresh = User(acc, exp=int(now) + 60)
    login(trust(op, acc), fresh)
    with pytest.raises(JwtError, match="expired"):
        login(trust(op, acc), fresh, now=now + 120)
    old = Account(op, "OLD", exp=int(now) - 1)
    with pytest.raises(JwtError, match="account JWT has expired"):
        login(trust(op, old), User(old))


def test_not_before_in_future() -> None:
    op, acc = chain()
    now = time.time()
    user = User(acc, nbf=int(now) + 60)
    with pytest.raises(JwtError, match="not yet valid"):
        login(trust(op, acc), user)
    login(trust(op, acc), user, now=now + 61)


def test_revoked_by_key() -> None:
    op, acc = chain()
    now = int(time.time())
    old = User(acc, iat=now - 100)
    newer = User(acc, iat=now - 10)
    acc.revoke(old.public_key, now - 50)
    acc.revoke(newer.public_key, now - 50)
    t = trust(op, acc)
    with pytest.raises(JwtError, match="revoked"):
        login(t, old)
    login(t, newer)  # issued after the revocation time
    exact = User(acc, iat=now - 50)
    acc.revoke(exact.public_key, now - 50)
    with pytest.raises(JwtError, match="revoked"):
        login(trust(op, acc), exact)


def test_revoked_by_star() -> None:
    op, acc = chain()
    now = int(time.time())
    acc.revoke("*", now - 50)
    t = trust(op, acc)
    with pytest.raises(JwtError, match="revoked"):
        login(t, User(acc, iat=now - 100))
    login(t, User(acc, iat=now))


def test_bearer_token_needs_no_nonce_signature() -> None:
    op, acc = chain()
    user = User(acc, bearer=True)
    t = trust(op, acc)
    _, claims = t.verify_user(user.jwt, NONCE, None)
    assert claims.bearer_token
    no_bearer = Account(op, "NB", limits={"disallow_bearer": True})
    with pytest.raises(JwtError, match="bearer"):
        trust(op, no_bearer).verify_user(User(no_bearer, bearer=True).jwt, NONCE, None)


def test_non_bearer_needs_a_good_nonce_signature() -> None:
    op, acc = chain()
    user = User(acc)
    t = trust(op, acc)
    with pytest.raises(JwtError, match="missing"):
        t.verify_user(user.jwt, NONCE, None)
    with pytest.raises(JwtError, match="not verified"):
        t.verify_user(user.jwt, NONCE, user.keys.sign(b"other nonce"))
    with pytest.raises(JwtError, match="not verified"):
        t.verify_user(user.jwt, NONCE, Keys("U").sign(NONCE))
    # The CONNECT text form works in both base64 flavours.
    for urlsafe in (False, True):
        t.verify_user(user.jwt, NONCE, user.sign_nonce(NONCE, urlsafe=urlsafe))


def test_connection_types_and_src() -> None:
    op, acc = chain()
    ws_only = User(acc, allowed_connection_types=["WEBSOCKET"])
    t = trust(op, acc)
    with pytest.raises(JwtError, match="connection type"):
        login(t, ws_only)
    login(t, ws_only, connection_type="WEBSOCKET")
    local = User(acc, src=["127.0.0.0/8"])
    login(t, local, client_ip="127.0.0.1")
    with pytest.raises(JwtError, match="src"):
        login(t, local, client_ip="10.1.2.3")


def test_effective_permissions_fall_back_to_account_defaults() -> None:
    op = Operator()
    acc = Account(op, "D", default_permissions={"pub": {"deny": ["x.>"]}, "sub": {}})
    account, claims = login(trust(op, acc), User(acc))
    assert jwt_trust.effective_permissions(claims, account).pub.deny == ("x.>",)
    _, own = login(trust(op, acc), User(acc, sub={"allow": ["y"]}))
    assert jwt_trust.effective_permissions(own, account).sub.allow == ("y",)


def test_from_options_file_inline_and_decorated(tmp_path: Path) -> None:
    op, acc = chain()
    plain = tmp_path / "op.jwt"
    plain.write_text(op.jwt + "\n")
    decorated = tmp_path / "op_decorated.jwt"
    decorated.write_text(
        "-----BEGIN NATS OPERATOR JWT-----\n" + op.jwt + "\n------END NATS OPERATOR JWT------\n"
    )
    preload = {acc.public_key: acc.jwt}
    for value in (str(plain), str(decorated), op.jwt):
        t = Trust([read_operator_jwt(value)], preload)
        assert t.operators[0].subject == op.public_key
        assert t.account(acc.public_key).name == "A"
    with pytest.raises(JwtError, match="cannot read"):
        read_operator_jwt(str(tmp_path / "missing.jwt"))


def test_bad_preload_and_system_account_mismatch() -> None:
    op, acc = chain()
    with pytest.raises(JwtError, match="preload"):
        Trust([op.jwt], {acc.public_key: "garbage"})
    named = Operator(system_account=Keys("A").public_key)
    with pytest.raises(JwtError, match="identical"):
        Trust([named.jwt], {}, system_account=Keys("A").public_key)
    assert Trust([named.jwt], {}).system_account == named.nats["system_account"]


# -- inputs the fuzzing campaign found (tests/campaigns/fuzz.py) -----------------------


def test_json_nested_deeper_than_python_is_a_jwt_error() -> None:
    header = b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    with pytest.raises(JwtError):
        jwt.decode(header + "." + b64(b"[" * 1000) + "." + b64(b"x" * 64))
    with pytest.raises(JwtError):
        jwt.decode(b64(b"[" * 1000) + "." + b64(b"{}") + "." + b64(b"x" * 64))


def test_decorated_creds_parse_in_linear_time() -> None:
    started = time.monotonic()
    for text in ("-" * 3000, " " * 50_000, "--- x ---\n" * 2000):
        assert jwt.parse_decorated_jwt(text) == text.strip()
    assert time.monotonic() - started < 1.0
    creds = "-----BEGIN NATS USER JWT-----\neyJ0.abc-_=\n------END NATS USER JWT------\n"
    assert jwt.parse_decorated_jwt("\n" + creds + "\nmore") == "eyJ0.abc-_="

"""server/auth.py without a server: the role table, roles implied, the tokens file; `pausable serve`'s loopback check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pausable.cli.daemon import loopback
from pausable.config import Settings
from pausable.server.auth import (
    ADMIN,
    ANY,
    OPERATOR,
    READER,
    WORKER,
    Authenticator,
    Principal,
    Unauthenticated,
    load_tokens_file,
    required_role,
    token_hash,
)
from pausable.server.engine import request_hash


def test_the_method_table() -> None:
    assert required_role("/grpc.health.v1.Health/Check") is None
    assert required_role("/pausable.v1.WorkerService/Checkpoint") == WORKER
    assert required_role("/pausable.v1.WorkerService/SomethingNew") == WORKER
    assert required_role("/pausable.v1.OperationService/GetOperation") == READER
    assert required_role("/pausable.v1.OperationService/Pause") == OPERATOR
    assert required_role("/google.longrunning.Operations/DeleteOperation") == ADMIN
    assert required_role("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") == ANY


def test_roles_imply_lesser_ones_but_never_worker() -> None:
    admin, operator, reader = Principal.of("a", ["admin"]), Principal.of("o", ["operator"]), Principal.of("r", ["reader"])
    assert admin.has(OPERATOR) and admin.has(READER) and not admin.has(WORKER)
    assert operator.has(READER) and not operator.has(ADMIN)
    assert admin.sees_all and reader.sees_all and not operator.sees_all
    assert admin.steers_all and not reader.steers_all and not operator.steers_all
    assert Principal.of("x", ["root", "reader"]).roles == frozenset({READER})  # unknown roles are dropped


def test_tokens_file_json_and_lines(tmp_path: Path) -> None:
    as_json = tmp_path / "tokens.json"
    as_json.write_text(json.dumps({token_hash("s3cret"): {"identity": "ci", "roles": ["operator"]}}))
    assert load_tokens_file(str(as_json))[token_hash("s3cret")] == Principal.of("ci", ["operator"])
    as_lines = tmp_path / "tokens.txt"
    as_lines.write_text(f"# comment\n{token_hash('w')} worker-1 worker\n{token_hash('r')} dash reader,operator\n")
    found = load_tokens_file(str(as_lines))
    assert found[token_hash("w")] == Principal.of("worker-1", ["worker"])
    assert found[token_hash("r")].roles == frozenset({READER, OPERATOR})


def test_auth_is_on_when_a_mode_is_configured() -> None:
    assert not Settings().auth_enabled
    assert Settings(jwt_secret="x").auth_enabled and Settings(tokens_file="t").auth_enabled


@pytest.mark.parametrize(
    "listen, expected",
    [
        ("127.0.0.1:1", True),
        ("localhost:1", True),
        ("[::1]:1", True),
        ("0.0.0.0:1", False),
        ("[::]:1", False),
        ("10.0.0.1:1", False),
    ],
)
def test_loopback(listen: str, expected: bool) -> None:
    assert loopback(listen) is expected


def test_request_hash_ignores_key_and_label_order() -> None:
    assert request_hash("w", '{"a":1,"b":2}', {"x": "1", "y": "2"}) == request_hash("w", '{"b":2,"a":1}', {"y": "2", "x": "1"})
    assert request_hash("w", "1", {}) != request_hash("w", "2", {})


def _authenticator(tmp_path: Path, **settings: str) -> Authenticator:
    return Authenticator(Settings(**settings))  # type: ignore[arg-type]


def test_jwks_keys_and_the_hs256_secret_each_verify_only_their_own_algorithm(tmp_path: Path) -> None:
    import time

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "ES256", "use": "sig"}]}))
    secret = "an-hs256-secret-long-enough-0123456789abcdef"
    authenticator = _authenticator(tmp_path, jwt_jwks_file=str(jwks), jwt_secret=secret, jwt_audience="pausable")
    claims = {"sub": "svc", "roles": "reader operator", "aud": "pausable", "exp": int(time.time()) + 60}
    signed = jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})
    assert authenticator._bearer(signed) == Principal.of("svc", ["reader", "operator"])
    assert authenticator._bearer(jwt.encode(claims, secret, algorithm="HS256")).name == "svc"
    other = ec.generate_private_key(ec.SECP256R1())
    for bad in (
        jwt.encode(claims, other, algorithm="ES256", headers={"kid": "k1"}),  # wrong key
        jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k2"}),  # unknown kid
        jwt.encode({**claims, "aud": "else"}, secret, algorithm="HS256"),  # wrong audience
        jwt.encode({**claims, "exp": int(time.time()) - 60}, secret, algorithm="HS256"),  # expired
        "not-a-jwt",
    ):
        with pytest.raises(Unauthenticated):
            authenticator._bearer(bad)


def test_a_static_token_is_found_by_its_hash(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{token_hash('ci-token')} ci operator\n")
    authenticator = _authenticator(tmp_path, tokens_file=str(tokens))
    assert authenticator._bearer("ci-token") == Principal.of("ci", ["operator"])
    with pytest.raises(Unauthenticated, match="tokens file"):
        authenticator._bearer("guess")

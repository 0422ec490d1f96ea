"""server/jwks.py: the JWKS file is read again when it changes or a token names an unknown kid, within its rate limits."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pausable.config import Settings
from pausable.server.auth import Authenticator, Principal, Unauthenticated
from pausable.server.jwks import CHECK_SECONDS, UNKNOWN_KID_SECONDS, JwksFile


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write_jwks(path: Path, keys: dict[str, Any]) -> None:
    """Replace the file as a deploy would: write a new one beside it, then rename it over the old one."""
    entries = [
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": kid, "alg": "ES256"}
        for kid, key in keys.items()
    ]
    fresh = path.with_suffix(".new")
    fresh.write_text(json.dumps({"keys": entries}))
    os.replace(fresh, path)


def signed(key: Any, kid: str, sub: str = "svc") -> str:
    claims = {"sub": sub, "roles": ["reader"], "exp": int(time.time()) + 600}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid})


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Authenticator, JwksFile, Clock, Path]:
    path = tmp_path / "jwks.json"
    write_jwks(path, {"old": OLD})
    authenticator = Authenticator(Settings(jwt_jwks_file=str(path)))  # type: ignore[call-arg]
    clock = Clock()
    authenticator.jwks = JwksFile(str(path), clock=clock)
    return authenticator, authenticator.jwks, clock, path


OLD, NEW = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())


def test_a_new_kid_reloads_at_once_and_a_removed_key_stops_verifying(setup: Any) -> None:
    authenticator, jwks, _clock, path = setup
    assert authenticator._bearer(signed(OLD, "old")) == Principal.of("svc", ["reader"])
    write_jwks(path, {"new": NEW})
    assert authenticator._bearer(signed(NEW, "new")).name == "svc"  # no time passed: the unknown kid reloaded the file
    with pytest.raises(Unauthenticated, match="no key"):
        authenticator._bearer(signed(OLD, "old"))
    assert jwks.reloads == 1  # the old kid, unknown now, did not read the file again within UNKNOWN_KID_SECONDS


def test_a_key_replaced_under_the_same_kid_is_seen_at_the_next_check(setup: Any) -> None:
    authenticator, jwks, clock, path = setup
    write_jwks(path, {"old": NEW})
    with pytest.raises(Unauthenticated):
        authenticator._bearer(signed(NEW, "old"))  # a known kid: the file is looked at once per CHECK_SECONDS
    clock.now += CHECK_SECONDS
    assert authenticator._bearer(signed(NEW, "old")).name == "svc"
    with pytest.raises(Unauthenticated):
        authenticator._bearer(signed(OLD, "old"))
    assert jwks.reloads == 1


def test_unknown_kids_read_the_file_at_most_once_per_interval(setup: Any) -> None:
    authenticator, jwks, clock, _path = setup
    for attempt in range(50):
        with pytest.raises(Unauthenticated):
            authenticator._bearer(signed(NEW, f"made-up-{attempt}"))
    assert jwks.reloads == 1
    clock.now += UNKNOWN_KID_SECONDS
    with pytest.raises(Unauthenticated):
        authenticator._bearer(signed(NEW, "made-up-again"))
    assert jwks.reloads == 2


def test_an_unreadable_file_keeps_the_keys_in_use(setup: Any) -> None:
    authenticator, jwks, clock, path = setup
    path.write_text('{"keys": [')  # caught mid-write
    clock.now += CHECK_SECONDS
    assert authenticator._bearer(signed(OLD, "old")).name == "svc"
    assert jwks.reloads == 0
    write_jwks(path, {"new": NEW})
    clock.now += CHECK_SECONDS
    assert authenticator._bearer(signed(NEW, "new")).name == "svc"

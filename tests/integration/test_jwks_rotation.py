"""Rotating the keys of the daemon's JWKS file while it runs: tokens of the new key are accepted without a restart,
tokens of a key the rotation removed are refused (server/jwks.py)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pausable.cli.launch import DaemonProcess, RedisServer
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc


def write_jwks(path: Path, keys: dict[str, Any]) -> None:
    """As a deploy replaces it: a new file renamed over the old one."""
    entries = [
        {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": kid, "alg": "ES256", "use": "sig"}
        for kid, key in keys.items()
    ]
    fresh = path.with_suffix(".new")
    fresh.write_text(json.dumps({"keys": entries}))
    os.replace(fresh, path)


def bearer(key: Any, kid: str) -> tuple[tuple[str, str]]:
    claims = {"sub": f"svc-{kid}", "roles": ["reader"], "exp": int(time.time()) + 600}
    return (("authorization", f"Bearer {jwt.encode(claims, key, algorithm='ES256', headers={'kid': kid})}"),)


class Daemon:
    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.ops = operation_pb2_grpc.OperationServiceStub(self.channel)

    def code(self, metadata: Any) -> grpc.StatusCode:
        try:
            self.ops.ListWorkflows(pb.ListWorkflowsRequest(), metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            return error.code()  # type: ignore[attr-defined, no-any-return]
        return grpc.StatusCode.OK

    def wait_accepted(self, metadata: Any, timeout: float = 15.0) -> None:
        """Until the daemon accepts `metadata` (it looks at the file at most once a second)."""
        deadline = time.monotonic() + timeout
        while (code := self.code(metadata)) != grpc.StatusCode.OK:
            assert code == grpc.StatusCode.UNAUTHENTICATED, code
            assert time.monotonic() < deadline, "the daemon did not take the rotated key"
            time.sleep(0.1)


@pytest.fixture
def jwks_daemon(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[Daemon, Path]]:
    path = tmp_path / "jwks.json"
    write_jwks(path, {"k1": FIRST})
    process = DaemonProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'pausable.db'}", redis_server.url, tmp_path / "daemon.log", jwt_jwks_file=str(path)
    ).start()
    daemon = Daemon(process.target)
    yield daemon, path
    daemon.channel.close()
    process.stop()


FIRST, SECOND, THIRD = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))


def test_rotated_keys_are_taken_without_a_restart(jwks_daemon: tuple[Daemon, Path]) -> None:
    daemon, path = jwks_daemon
    assert daemon.code(bearer(FIRST, "k1")) == grpc.StatusCode.OK
    assert daemon.code(bearer(SECOND, "k2")) == grpc.StatusCode.UNAUTHENTICATED  # not in the file yet
    # The daemon reads the changed file at its next look (once a second; at once for an unseen kid, once per 5 s).
    write_jwks(path, {"k2": SECOND})
    daemon.wait_accepted(bearer(SECOND, "k2"))
    assert daemon.code(bearer(FIRST, "k1")) == grpc.StatusCode.UNAUTHENTICATED  # removed by the rotation
    # A new key under the same id: the changed file is read at the next look (once a second).
    write_jwks(path, {"k2": THIRD})
    daemon.wait_accepted(bearer(THIRD, "k2"))
    assert daemon.code(bearer(SECOND, "k2")) == grpc.StatusCode.UNAUTHENTICATED

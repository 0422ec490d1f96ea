"""Authentication and authorization, from a plain gRPC client (not the SDK).

One daemon with an HS256 secret (issuer and audience checked) and a worker
with a worker token on a Redis of their own, once on each store (SQLite and
Postgres: the tests that use it run on both); a second daemon with TLS and a
client CA (mutual TLS); and `pausable serve` refusing a public address with
no authentication mode.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import os
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pausable.cli.launch import CLI, DaemonProcess, RedisServer, WorkerProcess, free_port, stop_process
from pausable.jsonvalue import to_value
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc, worker_pb2, worker_pb2_grpc

SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"
ISSUER = "pausable-tests"
AUDIENCE = "pausable"


def token(sub: str, roles: list[str], *, secret: str = SECRET, audience: str = AUDIENCE, expires_in: float = 24 * 3600) -> str:
    now = int(time.time())
    claims = {"sub": sub, "roles": roles, "iss": ISSUER, "aud": audience, "iat": now, "exp": now + int(expires_in)}
    return jwt.encode(claims, secret, algorithm="HS256")


def bearer(value: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {value}"),)


ALICE = bearer(token("alice", ["operator"]))
BOB = bearer(token("bob", ["operator"]))
READER = bearer(token("rita", ["reader"]))
ADMIN = bearer(token("ada", ["admin"]))


@dataclass
class Secured:
    target: str
    channel: grpc.Channel
    folder: Path
    http_url: str

    @property
    def ops(self) -> operation_pb2_grpc.OperationServiceStub:
        return operation_pb2_grpc.OperationServiceStub(self.channel)

    @property
    def workers(self) -> worker_pb2_grpc.WorkerServiceStub:
        return worker_pb2_grpc.WorkerServiceStub(self.channel)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, make_database: Callable[[Path], str]) -> Iterator[Secured]:
    """On each store (the `backend` parameter): ownership, request_id scoping and actors are the store's queries."""
    folder = tmp_path_factory.mktemp("secured")
    redis = RedisServer(folder / "redis").start()
    daemon = DaemonProcess(
        make_database(folder),
        redis.url,
        folder / "daemon.log",
        jwt_secret=SECRET,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        http_port=str(free_port()),
    )
    worker = WorkerProcess(
        daemon.target, redis.url, folder / "worker.log", env={"PAUSABLE_WORKER_TOKEN": token("worker-1", ["worker"])}
    )
    try:
        daemon.start()
        worker.start()
        channel = grpc.insecure_channel(daemon.target)
        ops = operation_pb2_grpc.OperationServiceStub(channel)
        deadline = time.monotonic() + 60
        while {"demo.etl", "demo.tapped"} - {
            w.name for w in ops.ListWorkflows(pb.ListWorkflowsRequest(), metadata=READER).workflows
        }:
            assert time.monotonic() < deadline, f"the worker did not register under auth; see {folder}/worker.log"
            assert worker.process is not None and worker.process.poll() is None, f"the worker exited; see {folder}/worker.log"
            time.sleep(0.1)
        yield Secured(daemon.target, channel, folder, f"http://127.0.0.1:{daemon.env['PAUSABLE_HTTP_PORT']}")
        channel.close()
    finally:
        worker.stop()
        daemon.stop()
        redis.stop()


def failure(call: Any, request: Any, metadata: Any = ()) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        result = call(request, metadata=metadata, timeout=10)
        if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
            list(result)  # a stream: its status comes with the first read
    return caught.value  # type: ignore[return-value]


def start(secured: Secured, who: Any, **fields: Any) -> pb.Operation:
    fields.setdefault("input", to_value(1))
    request = pb.StartOperationRequest(workflow="demo.tapped", **fields)
    return secured.ops.StartOperation(request, metadata=who, timeout=10).operation


@pytest.mark.parametrize(
    "metadata, says",
    [
        ((), "no credentials"),
        (bearer(token("alice", ["operator"], expires_in=-60)), "expired"),
        (bearer(token("alice", ["operator"], audience="someone-else")), "audience"),
        (bearer(token("alice", ["operator"], secret="not-the-daemon-s-secret-0123456789abcdef")), "signature"),
        ((("authorization", "Basic YWxpY2U6cHc="),), "Bearer"),
    ],
    ids=["no-token", "expired", "wrong-audience", "wrong-signature", "not-bearer"],
)
def test_bad_or_missing_credentials_are_unauthenticated(secured: Secured, metadata: Any, says: str) -> None:
    error = failure(secured.ops.ListWorkflows, pb.ListWorkflowsRequest(), metadata)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert says.lower() in (error.details() or "").lower()
    assert "send" in (error.details() or "")  # says what to send instead


def test_health_stays_open(secured: Secured) -> None:
    health = health_pb2_grpc.HealthStub(secured.channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING


def test_a_reader_can_read_but_not_start(secured: Secured) -> None:
    mine = start(secured, ALICE)
    assert secured.ops.GetOperation(pb.GetOperationRequest(operation_id=mine.id), metadata=READER).operation.id == mine.id
    error = failure(secured.ops.StartOperation, pb.StartOperationRequest(workflow="demo.tapped", input=to_value(1)), READER)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "operator" in (error.details() or "")


def test_an_operator_neither_reads_nor_steers_another_operators_operation(secured: Secured) -> None:
    theirs = start(secured, ALICE, labels={"secret": "alice-private"}, input=to_value(424242))
    assert theirs.requester == "alice"
    denied = [
        failure(secured.ops.GetOperation, pb.GetOperationRequest(operation_id=theirs.id), BOB),
        failure(secured.ops.Pause, pb.PauseRequest(operation_id=theirs.id), BOB),
        failure(secured.ops.Resume, pb.ResumeRequest(operation_id=theirs.id), BOB),
        failure(secured.ops.Cancel, pb.CancelRequest(operation_id=theirs.id), BOB),
        failure(secured.ops.Watch, pb.WatchRequest(operation_id=theirs.id), BOB),
    ]
    for error in denied:
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        details = error.details() or ""
        assert theirs.id not in details and "424242" not in details and "alice-private" not in details
    # Bob lists only his own; the admin and the reader see Alice's.
    bobs = start(secured, BOB)
    listed = {op.id for op in secured.ops.ListOperations(pb.ListOperationsRequest(page_size=100), metadata=BOB).operations}
    assert bobs.id in listed and theirs.id not in listed
    error = failure(secured.ops.ListOperations, pb.ListOperationsRequest(requester="alice"), BOB)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    for who in (ADMIN, READER):
        listed = {op.id for op in secured.ops.ListOperations(pb.ListOperationsRequest(page_size=100), metadata=who).operations}
        assert {theirs.id, bobs.id} <= listed
    # The owner and an admin may steer it; each command event names who sent it.
    secured.ops.Cancel(pb.CancelRequest(operation_id=theirs.id), metadata=ADMIN, timeout=10)
    events = [r.event for r in secured.ops.Watch(pb.WatchRequest(operation_id=theirs.id), metadata=ALICE, timeout=30)]
    actors = {pb.EventType.Name(e.type): e.actor for e in events}
    assert actors["EVENT_TYPE_STARTED"] == "alice"
    assert actors.get("EVENT_TYPE_CANCEL_REQUESTED", actors.get("EVENT_TYPE_CANCELLED")) == "ada"


def test_the_lro_service_applies_the_same_rules(secured: Secured) -> None:
    from google.longrunning import operations_pb2_grpc
    from google.longrunning import operations_proto_pb2 as lro

    stub = operations_pb2_grpc.OperationsStub(secured.channel)
    theirs = start(secured, ALICE)
    name = f"operations/{theirs.id}"
    for call, request in (
        (stub.GetOperation, lro.GetOperationRequest(name=name)),
        (stub.CancelOperation, lro.CancelOperationRequest(name=name)),
        (stub.WaitOperation, lro.WaitOperationRequest(name=name)),
    ):
        error = failure(call, request, BOB)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED and theirs.id not in (error.details() or "")
    listed = {op.name for op in stub.ListOperations(lro.ListOperationsRequest(page_size=100), metadata=BOB).operations}
    assert name not in listed
    error = failure(stub.DeleteOperation, lro.DeleteOperationRequest(name=name), ALICE)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "admin" in (error.details() or "")
    assert stub.GetOperation(lro.GetOperationRequest(name=name), metadata=ALICE, timeout=10).name == name


def test_watch_events_shows_an_operator_only_its_own(secured: Secured) -> None:
    alices, bobs = start(secured, ALICE), start(secured, BOB)
    seen: set[str] = set()
    stream = secured.ops.WatchEvents(pb.WatchEventsRequest(), metadata=BOB, timeout=3)
    with pytest.raises(grpc.RpcError) as ended:
        for response in stream:
            seen.add(response.event.operation_id)
    assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    assert bobs.id in seen and alices.id not in seen


def test_the_http_gateway_applies_the_same_rules(secured: Secured) -> None:
    from support.http import call, events

    def http(who: Any) -> dict[str, str]:
        return {"Authorization": who[0][1]} if who else {}

    nobody = call(secured.http_url, "GET", "/v1/workflows")
    grpc_says = failure(secured.ops.ListWorkflows, pb.ListWorkflowsRequest()).details()
    assert nobody.status == 401 and nobody.error == {"code": 401, "status": "UNAUTHENTICATED", "message": grpc_says}
    theirs = call(secured.http_url, "POST", "/v1/operations", {"workflow": "demo.tapped", "input": 7}, http(ALICE))
    assert theirs.status == 200 and theirs.body["operation"]["requester"] == "alice"
    theirs_id = theirs.body["operation"]["id"]
    assert call(secured.http_url, "POST", "/v1/operations", {"workflow": "demo.tapped", "input": 7}, http(READER)).status == 403
    for method, path in (("GET", ""), ("POST", ":pause"), ("POST", ":resume"), ("POST", ":cancel")):
        denied = call(secured.http_url, method, f"/v1/operations/{theirs_id}{path}", {} if method == "POST" else None, http(BOB))
        assert denied.status == 403 and theirs_id not in denied.error["message"]
    with pytest.raises(AssertionError, match="^403"):
        next(iter(events(secured.http_url, f"/v1/operations/{theirs_id}/events", http(BOB))))
    listed = call(secured.http_url, "GET", "/v1/operations?pageSize=100", headers=http(BOB)).body["operations"]
    assert theirs_id not in {op["id"] for op in listed}
    watched = next(iter(events(secured.http_url, f"/v1/operations/{theirs_id}/events", http(ALICE))))
    assert watched.data["type"] == "EVENT_TYPE_CREATED" and watched.data["actor"] == "alice"


def test_reflection_is_off_with_authentication(secured: Secured) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(secured.channel)
    requests = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.ServerReflectionInfo(requests, metadata=ADMIN, timeout=10))
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]


def test_the_cli_sends_a_token_and_the_access_log_names_the_caller(secured: Secured, tmp_path: Path) -> None:
    token_file = tmp_path / "alice.jwt"
    token_file.write_text(token("alice", ["operator"]) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAUSABLE_")}
    base = [*CLI, "--daemon", secured.target, "-o", "json"]
    refused = subprocess.run([*base, "workflows"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    started = subprocess.run(
        [*base, "--token-file", str(token_file), "start", "demo.tapped", "--input", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    assert '"requester": "alice"' in started.stdout
    log = secured.folder / "daemon.log"
    deadline = time.monotonic() + 10  # the daemon writes INFO lines within log_flush_seconds (0.1 s)
    while "StartOperation OK by alice" not in log.read_text():
        assert time.monotonic() < deadline, f"no access line naming alice in {log}"
        time.sleep(0.05)


def test_requester_is_the_identity(secured: Secured) -> None:
    assert start(secured, ALICE, requester="alice").requester == "alice"
    error = failure(
        secured.ops.StartOperation, pb.StartOperationRequest(workflow="demo.tapped", input=to_value(1), requester="bob"), ALICE
    )
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_only_workers_call_the_worker_service_and_workers_call_nothing_else(secured: Secured) -> None:
    request = worker_pb2.RegisterWorkflowsRequest(worker="intruder", workflows=[pb.Workflow(name="demo.etl", steps=["x"])])
    for who in (ALICE, ADMIN):
        error = failure(secured.workers.RegisterWorkflows, request, who)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "worker" in (error.details() or "")
    error = failure(secured.ops.ListWorkflows, pb.ListWorkflowsRequest(), bearer(token("worker-2", ["worker"])))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_request_ids_are_scoped_to_the_identity(secured: Secured) -> None:
    key = f"same-key-{time.time_ns()}"
    alices = start(secured, ALICE, request_id=key)
    bobs = start(secured, BOB, request_id=key)
    assert alices.id != bobs.id and bobs.requester == "bob"
    assert start(secured, ALICE, request_id=key).id == alices.id  # the same request again: the same operation
    request = pb.StartOperationRequest(workflow="demo.tapped", input=to_value(2), request_id=key)
    error = failure(secured.ops.StartOperation, request, ALICE)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "new request_id" in (error.details() or "")


def test_command_request_ids_are_scoped_to_the_identity(secured: Secured) -> None:
    alices, bobs = start(secured, ALICE), start(secured, BOB)
    key = f"cancel-{time.time_ns()}"
    secured.ops.Cancel(pb.CancelRequest(operation_id=alices.id, request_id=key), metadata=ALICE, timeout=10)
    # Bob's identical key is his own: it cancels his operation, and tells him nothing of Alice's.
    cancelled = secured.ops.Cancel(pb.CancelRequest(operation_id=bobs.id, request_id=key), metadata=BOB, timeout=10).operation
    assert cancelled.id == bobs.id and cancelled.state in (pb.OPERATION_STATE_CANCEL_REQUESTED, pb.OPERATION_STATE_CANCELLED)


def test_a_full_run_under_auth_succeeds(secured: Secured) -> None:
    request = pb.StartOperationRequest(workflow="demo.etl", input=to_value({"step_seconds": 0}))
    operation = secured.ops.StartOperation(request, metadata=ALICE, timeout=10).operation
    last = None
    for response in secured.ops.Watch(pb.WatchRequest(operation_id=operation.id), metadata=ALICE, timeout=90):
        last = response.event
    assert last is not None and last.operation.state == pb.OPERATION_STATE_SUCCEEDED, last


def test_serve_refuses_a_public_address_without_authentication(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAUSABLE_")}
    env["PAUSABLE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    done = subprocess.run(
        [*CLI, "serve", "--listen", f"0.0.0.0:{free_port()}"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "refusing to listen on 0.0.0.0" in done.stderr and "--insecure" in done.stderr
    assert not (tmp_path / "p.db").exists(), "it must not have opened the store, let alone served"


# -- mutual TLS ---------------------------------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, issuer: x509.Name, issuer_key: Any, key: Any, *, ca: bool = False, san: x509.GeneralName | None = None
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([san]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(item: Any) -> bytes:
    if isinstance(item, x509.Certificate):
        return item.public_bytes(serialization.Encoding.PEM)
    return item.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("pausable test CA", _name("pausable test CA"), ca_key, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate("127.0.0.1", ca.subject, ca_key, server_key, san=x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _certificate("carol", ca.subject, ca_key, client_key, san=x509.DNSName("carol.clients.example"))
    files = {"ca": ca, "server": server, "server_key": server_key, "client": client, "client_key": client_key}
    paths = {}
    for name, item in files.items():
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(_pem(item))
    return paths


def https_status(port: int, path: str, context: ssl.SSLContext) -> int:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_mutual_tls_names_the_client_by_its_certificate(tmp_path: Path, pki: dict[str, Path]) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "PAUSABLE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        "PAUSABLE_BROKER_URL": redis.url,
        "PAUSABLE_LISTEN": f"127.0.0.1:{port}",
        "PAUSABLE_HTTP_PORT": str(http_port),
    }
    args = ["serve", "--tls-cert", str(pki["server"]), "--tls-key", str(pki["server_key"]), "--client-ca", str(pki["ca"])]
    log = (tmp_path / "daemon.log").open("ab")
    daemon = subprocess.Popen([*CLI, *args], env=env, stdout=log, stderr=subprocess.STDOUT)
    ca = pki["ca"].read_bytes()
    with_cert = grpc.ssl_channel_credentials(ca, pki["client_key"].read_bytes(), pki["client"].read_bytes())
    target = f"127.0.0.1:{port}"
    try:
        with grpc.secure_channel(target, with_cert) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 30
            while True:
                try:
                    health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    break
                except grpc.RpcError:
                    assert daemon.poll() is None, f"the daemon exited; see {tmp_path}/daemon.log"
                    assert time.monotonic() < deadline, "the TLS daemon did not come up"
                    time.sleep(0.1)
            ops = operation_pb2_grpc.OperationServiceStub(channel)
            ops.ListWorkflows(pb.ListWorkflowsRequest(), timeout=10)  # the certificate is an operator (the default roles)
            listed = ops.ListOperations(pb.ListOperationsRequest(requester="carol.clients.example"), timeout=10)
            assert list(listed.operations) == []  # its own (the SAN): allowed; another's would be PERMISSION_DENIED
            error = failure(ops.ListOperations, pb.ListOperationsRequest(requester="carol"))
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        # Without a client certificate the TLS handshake itself is refused: nothing reaches a servicer (gRPC Python
        # cannot request a client certificate without requiring it; see the README's Security section).
        with grpc.secure_channel(target, grpc.ssl_channel_credentials(ca)) as channel:
            error = failure(operation_pb2_grpc.OperationServiceStub(channel).ListWorkflows, pb.ListWorkflowsRequest())
            assert error.code() == grpc.StatusCode.UNAVAILABLE
        # The HTTP gateway serves HTTPS with the same certificate and asks for a client certificate the same way.
        context = ssl.create_default_context(cafile=str(pki["ca"]))
        context.load_cert_chain(pki["client"], pki["client_key"])
        assert https_status(http_port, "/v1/operations?requester=carol.clients.example", context) == 200
        assert https_status(http_port, "/v1/operations?requester=carol", context) == 403
        with pytest.raises((ssl.SSLError, ConnectionError)):
            https_status(http_port, "/v1/workflows", ssl.create_default_context(cafile=str(pki["ca"])))
    finally:
        stop_process(daemon)
        redis.stop()
        log.close()

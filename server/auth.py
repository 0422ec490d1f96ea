"""Who is calling, and what they may do: one handler wrapper (handlers.py) for every service.

Identity (the first that applies):

- `authorization: Bearer <token>` metadata: a static token from
  `tokens_file` (looked up by its sha256), else a JWT verified with PyJWT
  against `jwt_secret` (HS256) or the keys of `jwt_jwks_file` (reloaded when
  it changes, see jwks.py), with expiry and, when set, `jwt_issuer` / `jwt_audience`; the identity is `sub`, the
  roles are the `jwt_roles_claim` claim (a list, or one space/comma separated string).
- a client certificate verified against `client_ca` (mutual TLS): the identity
  is its first subject alternative name, else its common name; its roles come
  from `client_cert_roles` (by identity, "*" for any other).

A bad token, or none when one is needed, is UNAUTHENTICATED with a message
saying what to send. Health is always open. With no mode configured
(`Settings.auth_enabled` false) every call is "anonymous" with every role, as
before authentication existed.

Authorization: `REQUIRED` is the one table of method → role. `reader` reads
everything, `operator` starts operations and reads and steers its own,
`admin` does all of that for every operation and deletes, `worker` calls
WorkerService and nothing else (and nobody else may). The servicers ask
`current_principal()` for ownership checks (`check_owner`, `requester_for`, `owner_filter`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from pausable.config import Settings
from pausable.server.handlers import HandlerWrapper
from pausable.server.identity_limits import IdentityLimits, OverLimit
from pausable.server.jwks import JwksFile, Key

READER, OPERATOR, ADMIN, WORKER = "reader", "operator", "admin", "worker"
ROLES = (READER, OPERATOR, ADMIN, WORKER)
# A role includes the rights of those listed with it.
IMPLIED = {ADMIN: (ADMIN, OPERATOR, READER), OPERATOR: (OPERATOR, READER), READER: (READER,), WORKER: (WORKER,)}
ANY = "any authenticated caller"

_OPS = "/pausable.v1.OperationService/"
_LRO = "/google.longrunning.Operations/"
_WORKERS = "/pausable.v1.WorkerService/"
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
# Streams counted against max_streams_per_identity while open (server/identity_limits.py).
COUNTED_STREAMS = frozenset({f"{_OPS}Watch", f"{_OPS}WatchEvents"})
REFLECTION_PREFIXES = ("/grpc.reflection.v1alpha.ServerReflection/", "/grpc.reflection.v1.ServerReflection/")

# The one table: method → the role it needs. WorkerService methods need `worker` (any method of it, by prefix).
REQUIRED: dict[str, str] = {
    f"{_OPS}GetOperation": READER,
    f"{_OPS}ListOperations": READER,
    f"{_OPS}Watch": READER,
    f"{_OPS}WatchEvents": READER,
    f"{_OPS}ListWorkflows": READER,
    f"{_OPS}StartOperation": OPERATOR,
    f"{_OPS}Pause": OPERATOR,
    f"{_OPS}Resume": OPERATOR,
    f"{_OPS}Cancel": OPERATOR,
    f"{_OPS}Retry": OPERATOR,
    f"{_OPS}Fork": OPERATOR,
    f"{_OPS}BulkPause": OPERATOR,
    f"{_OPS}BulkResume": OPERATOR,
    f"{_OPS}BulkCancel": OPERATOR,
    f"{_OPS}GetBulkAction": READER,
    f"{_OPS}WatchBulkAction": READER,
    f"{_LRO}GetOperation": READER,
    f"{_LRO}ListOperations": READER,
    f"{_LRO}WaitOperation": READER,
    f"{_LRO}CancelOperation": OPERATOR,
    f"{_LRO}DeleteOperation": ADMIN,
}


def required_role(method: str) -> str | None:
    """The role `method` needs; None when it is open (health); ANY for reflection and unknown methods."""
    if method.startswith(OPEN_PREFIXES):
        return None
    if method.startswith(_WORKERS):
        return WORKER
    return REQUIRED.get(method, ANY)


@dataclass(frozen=True)
class Principal:
    """The caller: `name` (JWT sub, token file identity, certificate subject) and the roles it was granted."""

    name: str
    roles: frozenset[str]
    authenticated: bool = True

    @classmethod
    def of(cls, name: str, roles: Iterable[str]) -> Principal:
        return cls(name, frozenset(role for role in roles if role in IMPLIED))

    def has(self, role: str) -> bool:
        """Granted `role`, or one that includes it (admin: operator and reader; operator: reader)."""
        return any(role in IMPLIED[granted] for granted in self.roles)

    @property
    def sees_all(self) -> bool:
        """Reads every operation: admins and readers (and anyone when authentication is off); an operator its own."""
        return not self.authenticated or ADMIN in self.roles or READER in self.roles

    @property
    def steers_all(self) -> bool:
        return not self.authenticated or ADMIN in self.roles


ANONYMOUS = Principal("anonymous", frozenset(ROLES), authenticated=False)
NOBODY = Principal("", frozenset())  # a call that failed authentication: no rights
PRINCIPAL: ContextVar[Principal] = ContextVar("pausable_principal", default=ANONYMOUS)


def current_principal() -> Principal:
    return PRINCIPAL.get()


class Unauthenticated(Exception):
    """No credentials, or bad ones (UNAUTHENTICATED); the message says what to send."""


class PermissionDenied(Exception):
    """Authenticated, but not allowed (PERMISSION_DENIED); names the missing role, never another's operation."""


# -- ownership checks for the servicers -------------------------------------------


def requester_for(field: str) -> str:
    """The requester to record: the authenticated identity (the request field must be empty or the same), else the field."""
    principal = current_principal()
    if not principal.authenticated:
        return field
    if field and field != principal.name:
        raise PermissionDenied(
            f"requester {field[:80]!r} is not you: leave requester empty, it is your authenticated identity {principal.name!r}"
        )
    return principal.name


def actor() -> str:
    return current_principal().name


def scoped_request_id(request_id: str) -> str:
    """A Pause/Resume/Cancel request_id as stored: prefixed by a digest of the caller's identity when authenticated,
    so one caller's key never meets another's (at most 200 characters, the column's size)."""
    principal = current_principal()
    if not request_id or not principal.authenticated:
        return request_id
    owner = hashlib.sha256(principal.name.encode()).hexdigest()[:16]
    if len(request_id) > 183:
        request_id = hashlib.sha256(request_id.encode()).hexdigest()
    return f"{owner}:{request_id}"


def check_owner(requester: str, steer: bool) -> None:
    """PERMISSION_DENIED unless the caller may read (steer=False) or steer this operation of `requester`."""
    principal = current_principal()
    allowed = principal.steers_all if steer else principal.sees_all
    if allowed or requester == principal.name:
        return
    raise PermissionDenied(
        f"{'steering' if steer else 'reading'} an operation you did not start needs role "
        f"{ADMIN if steer else 'reader or admin'}; you ({principal.name!r}) may {'steer' if steer else 'read'} only your own"
    )


def owner_filter(requester: str) -> str:
    """The requester filter of a list or event stream: forced to the caller's own for an operator."""
    principal = current_principal()
    if principal.sees_all:
        return requester
    if requester and requester != principal.name:
        raise PermissionDenied(f"listing another requester's operations needs role reader or admin; you are {principal.name!r}")
    return principal.name


# -- credentials ---------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_tokens_file(path: str) -> dict[str, Principal]:
    """sha256(token) hex → principal. JSON `{hash: {"identity": ..., "roles": [...]}}`, or lines `hash identity role,role`."""
    text = Path(path).read_text()
    found: dict[str, Principal] = {}
    if text.lstrip().startswith("{"):
        for digest, entry in json.loads(text).items():
            roles = entry.get("roles", [])
            found[digest.lower()] = Principal.of(
                entry["identity"], roles.replace(",", " ").split() if isinstance(roles, str) else roles
            )
        return found
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"{path}:{number}: expected `sha256hex identity role,role`")
        found[parts[0].lower()] = Principal.of(parts[1], parts[2].split(",") if len(parts) > 2 else [])
    return found


def _roles_of(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.replace(",", " ").split()
    if isinstance(value, (list, tuple)):
        return [str(role) for role in value]
    return []


class Authenticator:
    """Turns a call's metadata and TLS peer into a Principal, per the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.enabled = settings.auth_enabled
        self.tokens = load_tokens_file(settings.tokens_file) if settings.tokens_file else {}
        # (key id or "", key, the one algorithm it verifies): an HS256 secret never meets an RS/ES token and vice versa.
        self.jwt_keys: list[Key] = [("", settings.jwt_secret, "HS256")] if settings.jwt_secret else []
        # The JWKS file's keys, reloaded when the file changes or a token names a key id it does not hold (jwks.py).
        self.jwks = JwksFile(settings.jwt_jwks_file) if settings.jwt_jwks_file else None
        self.cert_roles = settings.client_cert_roles

    def what_to_send(self) -> str:
        ways = []
        if self.jwt_keys or self.jwks or self.tokens:
            ways.append("metadata `authorization: Bearer <token>` (pausable --token / PAUSABLE_TOKEN)")
        if self.settings.client_ca:
            ways.append("a client certificate signed by the daemon's client CA (--tls-cert/--tls-key)")
        return " or ".join(ways)

    def principal(self, metadata: Iterable[tuple[str, Any]], context: grpc.aio.ServicerContext) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        header = next((value for key, value in metadata if key == "authorization"), None)
        if header is not None:
            if isinstance(header, bytes):
                header = header.decode("utf-8", "replace")
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated(f"the authorization metadata must be `Bearer <token>`; send {self.what_to_send()}")
            return self._bearer(token.strip())
        if self.settings.client_ca:
            subject = certificate_subject(context)
            if subject is not None:
                roles = self.cert_roles.get(subject, self.cert_roles.get("*", []))
                return Principal.of(subject, roles)
        raise Unauthenticated(f"no credentials: send {self.what_to_send()}")

    def _bearer(self, token: str) -> Principal:
        found = self.tokens.get(token_hash(token))
        if found is not None:
            return found
        if not (self.jwt_keys or self.jwks):
            raise Unauthenticated("unknown token: send a token listed in the daemon's tokens file")
        import jwt

        options = {"require": ["exp", "sub"], "verify_aud": bool(self.settings.jwt_audience)}
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as caught:
            raise Unauthenticated(f"invalid token: {caught}; send a JWT (or a token from the tokens file)") from None
        kid, algorithm = str(header.get("kid") or ""), header.get("alg")
        keys = self.jwt_keys + (self.jwks.keys_for(kid) if self.jwks else [])
        candidates = [(key, alg) for key_id, key, alg in keys if alg == algorithm and (not kid or key_id in ("", kid))]
        if not candidates:
            raise Unauthenticated(f"invalid token: no key of this daemon verifies alg {algorithm!r} kid {kid!r}")
        error: Exception | None = None
        for key, alg in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[alg],
                    audience=self.settings.jwt_audience or None,
                    issuer=self.settings.jwt_issuer or None,
                    options=options,  # type: ignore[arg-type]
                    leeway=5,
                )
            except jwt.InvalidSignatureError as caught:
                error = caught
                continue
            except jwt.PyJWTError as caught:
                raise Unauthenticated(f"invalid token: {caught}; send a valid, unexpired JWT for this daemon") from None
            return Principal.of(str(claims["sub"]), _roles_of(claims.get(self.settings.jwt_roles_claim)))
        raise Unauthenticated(f"invalid token: {error}; send a JWT signed with the daemon's key")


def certificate_subject(context: grpc.aio.ServicerContext) -> str | None:
    """The verified client certificate's first SAN, else its CN; None without one."""
    try:
        auth = context.auth_context()
    except Exception:  # noqa: BLE001 - no TLS
        return None
    for key in ("x509_subject_alternative_name", "x509_common_name"):
        for value in auth.get(key) or ():
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


# -- the wrapper --------------------------------------------------------------------


class AuthWrapper(HandlerWrapper):
    """Authenticates every call (health excepted), checks `REQUIRED`, sets `current_principal()` for the servicer,
    and applies the per-identity limits (server/identity_limits.py) to authenticated callers."""

    def __init__(self, authenticator: Authenticator, limits: IdentityLimits | None = None) -> None:
        super().__init__()
        self.authenticator = authenticator
        self.limits = limits if limits is not None else IdentityLimits.from_settings(authenticator.settings)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        role = required_role(method)
        return handler if role is None else self._wrap(method, role, handler)

    async def _admit(self, method: str, role: str, context: grpc.aio.ServicerContext) -> Principal:
        try:
            principal = self.authenticator.principal(context.invocation_metadata() or (), context)
        except Unauthenticated as error:
            PRINCIPAL.set(NOBODY)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(error))
            raise  # abort raises; this line is never reached
        PRINCIPAL.set(principal)
        if role != ANY and not principal.has(role):
            name = method.rpartition("/")[2]
            if role == WORKER:
                reason = f"{name} is for workers only: it needs role worker"
            else:
                reason = f"{name} needs role {role}"
            have = ", ".join(sorted(principal.roles)) or "none"
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{reason}; {principal.name!r} has roles: {have}")
        if principal.authenticated and role != WORKER and principal.roles == {WORKER}:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a worker identity may call WorkerService only")
        # Workers are exempt from the rate: they report on every step the daemon gave them (see identity_limits.py).
        if principal.authenticated and role != WORKER:
            try:
                self.limits.take_call(principal.name)
            except OverLimit as error:
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
        return principal

    async def _open_stream(self, principal: Principal, context: grpc.aio.ServicerContext) -> bool:
        """Counts a Watch/WatchEvents stream of an authenticated caller (RESOURCE_EXHAUSTED over the limit) and sends
        its headers, so a client knows it was admitted; True when counted (then pair with `limits.close_stream`)."""
        if not principal.authenticated or self.limits.max_streams <= 0:
            return False
        try:
            self.limits.open_stream(principal.name)
        except OverLimit as error:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
        try:
            await context.send_initial_metadata(())
        except BaseException:
            self.limits.close_stream(principal.name)
            raise
        return True

    def _wrap(self, method: str, role: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        serializers = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
        admit, open_stream, limits = self._admit, self._open_stream, self.limits
        counted = method in COUNTED_STREAMS

        def unary(behavior: Callable[[Any, Any], Awaitable[Any]]) -> Callable[[Any, Any], Awaitable[Any]]:
            async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
                principal = await admit(method, role, context)
                if not (counted and await open_stream(principal, context)):
                    return await behavior(request, context)
                try:
                    return await behavior(request, context)
                finally:  # ended, failed, or cancelled (the client went away)
                    limits.close_stream(principal.name)

            return checked

        def stream(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
            if inspect.isasyncgenfunction(behavior):

                async def checked_generator(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                    principal = await admit(method, role, context)
                    held = counted and await open_stream(principal, context)
                    try:
                        async for item in behavior(request, context):
                            yield item
                    finally:
                        if held:
                            limits.close_stream(principal.name)

                return checked_generator
            return unary(behavior)

        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **serializers)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **serializers)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(stream(handler.unary_stream), **serializers)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(stream(handler.stream_stream), **serializers)
        return handler

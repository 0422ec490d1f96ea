"""Daemon addresses for gRPC channels, with client-side round robin over replicas.

    "10.0.0.5:50151"                      one daemon
    "127.0.0.1:50151,127.0.0.1:50152"     several replicas, by IP
    "dns:///pausable.internal:50151"      every address a DNS name resolves to

gRPC balances calls over the reachable addresses and skips one that went
away; callers retry UNAVAILABLE (pausable.retry), which lands on another
replica. No service-config retry policy is set: pausable.retry says why.
"""

from __future__ import annotations

import ipaddress
from typing import Any

ROUND_ROBIN: list[tuple[str, Any]] = [("grpc.lb_policy_name", "round_robin")]


def channel_target(spec: str) -> str:
    addresses = [part.strip() for part in spec.split(",") if part.strip()]
    if not addresses:
        raise ValueError("no daemon address given: use host:port, ip:port,ip:port or dns:///name:port")
    if len(addresses) == 1:
        return addresses[0]
    hosts = [address.rpartition(":")[0].strip("[]") for address in addresses]
    try:
        versions = {ipaddress.ip_address(host).version for host in hosts}
    except ValueError:
        raise ValueError(
            f"a list of daemon addresses must be ip:port pairs ({spec!r}); for host names use one dns:///name:port"
        ) from None
    if len(versions) != 1:
        raise ValueError(f"mix of IPv4 and IPv6 addresses in {spec!r}")
    return f"ipv{versions.pop()}:" + ",".join(addresses)


def channel_options() -> list[tuple[str, Any]]:
    return list(ROUND_ROBIN)

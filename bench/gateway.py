"""The HTTP/JSON gateway against gRPC, on the same daemon in the same run.

get: GetOperation of one operation, one call at a time from one client
process: over HTTP/1.1 with keep-alive (aiohttp's client, JSON) and over gRPC
(grpc.aio, protobuf), in `rounds` interleaved rounds of `calls` calls per
side. Reported: each side's p50 and p99 pooled over its rounds, and the ratio
HTTP/gRPC of the per-round medians (the median of the round pairs' ratios).

sse: `watchers` Server-Sent Events subscribers of one operation against as
many gRPC Watch streams (fanout.py's pass), in interleaved passes, each on an
operation of its own whose chain no worker runs. The events are the same
ReportProgress calls on the same schedule on both sides; a delivery's delay
is its arrival minus the event's own time, so each p99 is over watchers ×
events deliveries; the one client process reads every delivery of both
sides. Reported: the p99 ratio SSE/gRPC (issue 16's target: at most 1.5)
and the daemon's RSS with the SSE streams open.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import grpc
import orjson
from fanout import Deliveries, Side, drive, fanout_pass, pausable_side
from stats import p99

from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc


def event_time(text: str) -> float:
    """An RFC 3339 time as the proto3 JSON mapping writes it (up to 9 fractional digits, Z) in seconds since 1970."""
    from datetime import datetime

    whole, _, fraction = text.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + (float(f"0.{fraction}") if fraction else 0.0)


async def latencies(call: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    taken = []
    for _ in range(count):
        began = time.perf_counter()
        await call()
        taken.append(time.perf_counter() - began)
    return taken


def measure_get(target: str, http_url: str, operation_id: str, rounds: int, calls: int) -> dict[str, float]:
    async def run() -> dict[str, float]:
        timings: dict[str, list[list[float]]] = {"http": [], "grpc": []}
        async with aiohttp.ClientSession(http_url) as session, grpc.aio.insecure_channel(target) as channel:
            stub = operation_pb2_grpc.OperationServiceStub(channel)
            request = pb.GetOperationRequest(operation_id=operation_id)

            async def over_http() -> None:
                async with session.get(f"/v1/operations/{operation_id}") as response:
                    assert response.status == 200, await response.text()
                    orjson.loads(await response.read())

            async def over_grpc() -> None:
                await stub.GetOperation(request)

            for side, call in (("http", over_http), ("grpc", over_grpc)):
                await latencies(call, calls // 5)  # warm: connections, caches
            for index in range(rounds):
                order = ("http", "grpc") if index % 2 == 0 else ("grpc", "http")
                for side in order:
                    timings[side].append(await latencies(over_http if side == "http" else over_grpc, calls))
        pooled = {side: [t for taken in rounds_ for t in taken] for side, rounds_ in timings.items()}
        return {
            "gateway_get_p50_ms": statistics.median(pooled["http"]) * 1000,
            "gateway_get_p99_ms": p99(pooled["http"]) * 1000,
            "gateway_grpc_get_p50_ms": statistics.median(pooled["grpc"]) * 1000,
            "gateway_grpc_get_p99_ms": p99(pooled["grpc"]) * 1000,
            "gateway_get_p50_ratio": statistics.median(
                statistics.median(h) / statistics.median(g) for h, g in zip(timings["http"], timings["grpc"], strict=True)
            ),
        }

    return asyncio.run(run())


async def sse_pass(http_url: str, side: Side, watchers: int, events: int, interval: float) -> tuple[list[float], float]:
    """fanout.fanout_pass with SSE subscribers: the delivery delays (s) and the daemon's RSS (MB) after the events."""
    path = f"/v1/operations/{side.request.operation_id}/events?afterSeq={side.request.after_seq}"
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(http_url, connector=connector, timeout=timeout) as session:

        async def watch(_index: int, received: Deliveries) -> None:
            async with session.get(path) as response:
                assert response.status == 200, await response.text()
                async for line in response.content:
                    if not line.startswith(b"data: "):
                        continue
                    arrived = time.time()
                    event = orjson.loads(line[6:])
                    seq = int(event.get("seq", 0))
                    if seq and seq <= side.request.after_seq + 1:
                        received.subscribed += 1
                    elif event.get("type") == "EVENT_TYPE_PROGRESS":
                        received.delays.append(arrived - event_time(event["time"]))
                    if event.get("type") in ("EVENT_TYPE_SUCCEEDED", "EVENT_TYPE_CANCELLED"):
                        return

        return await drive(side, watchers, events, interval, watch)


def measure_sse_fanout(
    daemon: tuple[str, int],
    http_url: str,
    new_operation: Callable[[], str],
    watchers: int,
    events: int,
    interval: float,
    passes: int,
) -> dict[str, float]:
    async def run() -> dict[str, float]:
        sse: list[list[float]] = []
        watch: list[list[float]] = []
        memory: list[float] = []
        async with grpc.aio.insecure_channel(daemon[0]) as emitter:
            for index in range(passes):
                for name in ("sse", "grpc") if index % 2 == 0 else ("grpc", "sse"):
                    side = await pausable_side(*daemon, watchers, new_operation(), emitter)
                    if name == "sse":
                        delays, rss = await sse_pass(http_url, side, watchers, events, interval)
                        sse.append(delays)
                        memory.append(rss)
                    else:
                        watch.append((await fanout_pass(side, watchers, events, interval))[0])
        pooled_sse = [d for delays in sse for d in delays]
        pooled_grpc = [d for delays in watch for d in delays]
        return {
            "sse_fanout_p50_ms": statistics.median(pooled_sse) * 1000,
            "sse_fanout_p99_ms": p99(pooled_sse) * 1000,
            "sse_fanout_grpc_p99_ms": p99(pooled_grpc) * 1000,
            "sse_fanout_p99_ratio": statistics.median(p99(a) / p99(b) for a, b in zip(sse, watch, strict=True)),
            "sse_fanout_deliveries": float(len(pooled_sse)),
            "sse_fanout_rss_mb": statistics.median(memory),
        }

    return asyncio.run(run())

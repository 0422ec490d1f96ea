"""StartOperation throughput of two daemons (two source trees) measured side by side.

    python bench/paired_start.py --base /work/wt-base            # base tree against this one
    python bench/paired_start.py --base . --rounds 8             # A/A: both sides this tree (shows the bias)

Each side is a source tree with its own `.venv` (`<tree>/.venv/bin/pausable
serve`), its own Redis and its own SQLite file, and the void workflow of
bench/run.py's start_rate (five steps to a queue no worker reads: only the
daemon's side is measured). Both daemons run for the whole run; one client
(64 calls in flight, as start_rate) drives one side at a time, in short
turns that alternate (A B, B A, ... `--slices` of them per round), so the
machine's background load, which changes within seconds, reaches both sides
alike. Per side and round: the
starts per second, and the daemon's CPU time (user + system, /proc) per
start. Prints each round, then the medians and their ratios (this tree over
the base), and as its last line one JSON object. `--threads` adds each
daemon thread's CPU per start (names from `py-spy dump`; threads without a
Python name, gRPC's own among them, count as "native").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import redis

from pausable.cli.launch import RedisServer, free_port, stop_process, wait_serving
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc, worker_pb2, worker_pb2_grpc

VOID_QUEUE = "bench-void"
WORKFLOW = "bench.void5"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Side:
    name: str
    tree: Path
    folder: Path
    redis: RedisServer | None = None
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    thread_names: dict[int, str] = field(default_factory=dict)
    thread_us: dict[str, list[float]] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Its Redis and `pausable serve` from its tree's venv, then the void workflow registered."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.folder / "redis").start()
        self.port = free_port()
        env = {
            **os.environ,
            "PAUSABLE_DATABASE_URL": f"sqlite+aiosqlite:///{self.folder / 'bench.db'}",
            "PAUSABLE_BROKER_URL": self.redis.url,
            "PAUSABLE_LISTEN": self.target,
            "PAUSABLE_RETENTION_SECONDS": "0",
            # The void chains never run: no reports, no tokens; a lease longer than the run keeps the sweep idle.
            "PAUSABLE_REQUIRE_STEP_TOKENS": "false",
            "PAUSABLE_STEP_LEASE_SECONDS": "3600",
        }
        env.pop("PYTHONPATH", None)
        self.process = subprocess.Popen(
            [str(self.tree / ".venv" / "bin" / "pausable"), "serve"],
            env=env,
            cwd=self.folder,
            stdout=(self.folder / "daemon.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_serving(self.target, 60, self.process)
        plan = [{"task": "bench.noop", "args": [], "kwargs": {}, "options": {"queue": VOID_QUEUE}} for _ in range(5)]
        with grpc.insecure_channel(self.target) as channel:
            worker_pb2_grpc.WorkerServiceStub(channel).RegisterWorkflows(
                worker_pb2.RegisterWorkflowsRequest(workflows=[pb.Workflow(name=WORKFLOW, plan_json=json.dumps(plan))])
            )

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return _cpu_seconds(Path(f"/proc/{self.process.pid}/stat"))

    def name_threads(self) -> None:
        """Thread id -> Python thread name, from `py-spy dump`."""
        assert self.process is not None
        dump = subprocess.run(
            [_py_spy(), "dump", "--pid", str(self.process.pid)], capture_output=True, text=True, check=True
        ).stdout
        self.thread_names = {int(tid): name for tid, name in re.findall(r'^Thread (\d+) \(\w+\): "(.*)"$', dump, re.MULTILINE)}

    def thread_seconds(self) -> dict[str, float]:
        """CPU seconds of the daemon's threads by name (gRPC's and other threads without a Python name: "native")."""
        assert self.process is not None
        totals: dict[str, float] = {}
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            try:
                seconds = _cpu_seconds(task / "stat")
            except OSError:  # the thread ended meanwhile
                continue
            name = re.sub(r"^Thread-\d+ ", "", self.thread_names.get(int(task.name), "native"))
            totals[name] = totals.get(name, 0.0) + seconds
        return totals

    def clear_queue(self) -> None:
        assert self.redis is not None
        redis.Redis.from_url(self.redis.url).delete(VOID_QUEUE)

    def stop(self) -> None:
        stop_process(self.process)
        if self.redis is not None:
            self.redis.stop()


async def drive(stub: operation_pb2_grpc.OperationServiceStub, concurrency: int, seconds: float) -> int:
    """Starts completed by `concurrency` loops calling StartOperation back to back for `seconds`."""
    done = 0
    request = pb.StartOperationRequest(workflow=WORKFLOW)
    deadline = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await stub.StartOperation(request)
            done += 1

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done


def _cpu_seconds(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("--threads needs py-spy (pip install py-spy)")
    return found


@dataclass
class Tally:
    """One side's totals over the slices of a round."""

    done: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0
    threads: dict[str, float] = field(default_factory=dict)


async def run_round(sides: list[Side], concurrency: int, seconds: float, slices: int, threads: bool) -> list[Tally]:
    """Each side driven for `seconds` in all, in `slices` turns taken alternately (A B, B A, ...): both sides meet
    the same background load. One Tally per side."""
    tallies = [Tally() for _ in sides]
    channels = [grpc.aio.insecure_channel(side.target) for side in sides]
    try:
        stubs = [operation_pb2_grpc.OperationServiceStub(channel) for channel in channels]
        for turn in range(slices):
            order = range(len(sides)) if turn % 2 == 0 else reversed(range(len(sides)))
            for index in order:
                side, tally = sides[index], tallies[index]
                threads_before = side.thread_seconds() if threads else {}
                cpu_before, started = side.cpu_seconds(), time.monotonic()
                tally.done += await drive(stubs[index], concurrency, seconds / slices)
                tally.elapsed += time.monotonic() - started
                tally.cpu += side.cpu_seconds() - cpu_before
                for name, total in (side.thread_seconds() if threads else {}).items():
                    tally.threads[name] = tally.threads.get(name, 0.0) + total - threads_before.get(name, 0.0)
    finally:
        for channel in channels:
            await channel.close()
    for side in sides:
        side.clear_queue()
    return tallies


def record(side: Side, tally: Tally) -> None:
    done = max(tally.done, 1)
    side.rates.append(done / tally.elapsed)
    side.cpu_us.append(tally.cpu / done * 1e6)
    for name, seconds in tally.threads.items():
        side.thread_us.setdefault(name, []).append(seconds / done * 1e6)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, type=Path, help="the baseline source tree (with its own .venv)")
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent, help="default: this tree")
    parser.add_argument("--rounds", type=int, default=6, help="rounds, each measuring both sides (at least 5)")
    parser.add_argument("--seconds", type=float, default=4.0, help="each side's driving time per round")
    parser.add_argument("--slices", type=int, default=8, help="turns per round, each side's taken alternately")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--threads", action="store_true", help="also each daemon thread's CPU per start (needs py-spy)")
    options = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="pausable-paired-"))
    base = Side("base", options.base.resolve(), folder / "base")
    this = Side("this", options.tree.resolve(), folder / "this")
    try:
        for side in (base, this):
            side.start()
        asyncio.run(run_round([base, this], options.concurrency, 2.0, 2, threads=False))  # warm-up, not counted
        for side in (base, this):
            if options.threads:
                side.name_threads()
        for round_ in range(options.rounds):
            sides = [base, this] if round_ % 2 == 0 else [this, base]
            tallies = asyncio.run(run_round(sides, options.concurrency, options.seconds, options.slices, options.threads))
            for side, tally in zip(sides, tallies, strict=True):
                record(side, tally)
            print(
                f"round {round_ + 1}: base {base.rates[-1]:7.1f}/s {base.cpu_us[-1]:6.0f} µs/start   "
                f"this {this.rates[-1]:7.1f}/s {this.cpu_us[-1]:6.0f} µs/start   "
                f"ratio {this.rates[-1] / base.rates[-1]:.3f}",
                flush=True,
            )
    finally:
        for side in (base, this):
            side.stop()
    per_round = [t / b for t, b in zip(this.rates, base.rates, strict=True)]
    result = {
        "base_starts_per_s": statistics.median(base.rates),
        "this_starts_per_s": statistics.median(this.rates),
        "start_rate_ratio": statistics.median(this.rates) / statistics.median(base.rates),
        "start_rate_ratio_per_round_median": statistics.median(per_round),
        "base_cpu_us_per_start": statistics.median(base.cpu_us),
        "this_cpu_us_per_start": statistics.median(this.cpu_us),
        "cpu_per_start_ratio": statistics.median(this.cpu_us) / statistics.median(base.cpu_us),
    }
    print(f"base {base.tree}\nthis {this.tree}\nlogs {folder}")
    for name in sorted(base.thread_us.keys() | this.thread_us.keys()):
        base_us, this_us = (statistics.median(side.thread_us.get(name) or [0.0]) for side in (base, this))
        print(f"thread {name:<40} base {base_us:7.0f} µs/start   this {this_us:7.0f} µs/start")
    for key, value in result.items():
        print(f"{key:<36}{value:>10.3f}")
    print(json.dumps({key: round(value, 3) for key, value in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

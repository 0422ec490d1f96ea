"""The daemon's own rates of two daemons (two source trees) measured side by side: starts, checkpoints, resumes.

    python bench/paired_rates.py --base /work/wt-base                       # starts: base tree against this one
    python bench/paired_rates.py --base /work/wt-base --measure checkpoint  # or resume; several: start,checkpoint
    python bench/paired_rates.py --base . --rounds 8                        # A/A: both sides this tree (shows the bias)

Each side is a source tree with its own `.venv` (`<tree>/.venv/bin/pausable
serve`), its own Redis and its own SQLite file, and the void workflows of
bench/daemon_throughput.py (steps to a queue no worker reads: only the
daemon's side is measured; the bench sends the calls a worker would send).
Both daemons run for the whole run; one client (64 calls in flight, as
bench/run.py's rates) drives one side at a time, in short turns that
alternate (A B, B A, ... `--slices` of them per round), so the machine's
background load, which changes within seconds, reaches both sides alike.

- start: StartOperation of a five-step void workflow;
- checkpoint: the synchronous Checkpoint a worker sends, from 100 running
  operations (started afresh each round, untimed), one call on its way per
  operation;
- resume: Resume of PAUSED operations (started and paused before the
  round, untimed), each resumed once.

Per measure, side and round: the calls per second and the daemon's CPU time
(user + system, /proc) per call. Prints each round, then the medians and
their ratios (this tree over the base), and as its last line one JSON
object. `--threads` adds each daemon thread's CPU per call (names from
`py-spy dump`; threads without a Python name, gRPC's own among them, count
as "native"). The calls are the same on both trees: fields a tree does not
know are ignored by its protobuf parser.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from daemon_throughput import VOID_QUEUE, register_void_workflow, sync_checkpoint

from pausable.cli.launch import RedisServer, free_port, stop_process, wait_serving
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import operation_pb2_grpc, worker_pb2, worker_pb2_grpc

TICKS = os.sysconf("SC_CLK_TCK")
STARTED = "bench.void5"  # what start and resume start
CHECKPOINTED = "bench.void"  # long enough for a round's checkpoints
CHECKPOINTED_STEPS = 400

Call = Callable[[int], Awaitable[bool]]  # the call of loop `index`; False: nothing left to call


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
        """Its Redis and `pausable serve` from its tree's venv, then the void workflows registered."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.folder / "redis").start()
        self.port = free_port()
        env = {
            **os.environ,
            "PAUSABLE_DATABASE_URL": f"sqlite+aiosqlite:///{self.folder / 'bench.db'}",
            "PAUSABLE_BROKER_URL": self.redis.url,
            "PAUSABLE_LISTEN": self.target,
            "PAUSABLE_RETENTION_SECONDS": "0",
            # The void chains never run and the bench's reports carry no tokens; a lease longer than the run keeps
            # the sweep idle.
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
        register_void_workflow(self.target, STARTED, 5)
        register_void_workflow(self.target, CHECKPOINTED, CHECKPOINTED_STEPS)

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


# -- the measures: each prepares a round's calls on one side (untimed) -------------------------


async def starts(channel: grpc.aio.Channel, concurrency: int, pool: int) -> Call:
    stub = operation_pb2_grpc.OperationServiceStub(channel)
    request = pb.StartOperationRequest(workflow=STARTED)

    async def start(_index: int) -> bool:
        await stub.StartOperation(request)
        return True

    return start


async def checkpoints(channel: grpc.aio.Channel, concurrency: int, pool: int) -> Call:
    """One running operation per loop, each checkpointing its next step."""
    stub = operation_pb2_grpc.OperationServiceStub(channel)
    workers = worker_pb2_grpc.WorkerServiceStub(channel)
    request = pb.StartOperationRequest(workflow=CHECKPOINTED)
    ids = [(await stub.StartOperation(request)).operation.id for _ in range(concurrency)]
    steps = [0] * concurrency

    async def checkpoint(index: int) -> bool:
        if steps[index] == CHECKPOINTED_STEPS - 1:
            raise SystemExit(f"an operation ran out of steps: raise CHECKPOINTED_STEPS above {CHECKPOINTED_STEPS}")
        reply = await workers.Checkpoint(sync_checkpoint(ids[index], steps[index]))
        if reply.decision != worker_pb2.DECISION_CONTINUE:
            raise RuntimeError(f"checkpoint of a running operation answered {worker_pb2.Decision.Name(reply.decision)}")
        steps[index] += 1
        return True

    return checkpoint


async def resumes(channel: grpc.aio.Channel, concurrency: int, pool: int) -> Call:
    """`pool` PAUSED operations (paused at their first step's checkpoint), each resumed once."""
    stub = operation_pb2_grpc.OperationServiceStub(channel)
    workers = worker_pb2_grpc.WorkerServiceStub(channel)
    request = pb.StartOperationRequest(workflow=STARTED)
    paused: list[str] = []

    async def pause_one() -> None:
        operation_id = (await stub.StartOperation(request)).operation.id
        await stub.Pause(pb.PauseRequest(operation_id=operation_id))
        reply = await workers.Checkpoint(sync_checkpoint(operation_id, 0))
        if reply.state != pb.OPERATION_STATE_PAUSED:
            raise RuntimeError(f"a paused void operation is {pb.OperationState.Name(reply.state)}")
        paused.append(operation_id)

    for _ in range(0, pool, concurrency):
        await asyncio.gather(*(pause_one() for _ in range(min(concurrency, pool - len(paused)))))

    async def resume(_index: int) -> bool:
        if not paused:
            return False
        await stub.Resume(pb.ResumeRequest(operation_id=paused.pop()))
        return True

    return resume


MEASURES: dict[str, Callable[[grpc.aio.Channel, int, int], Awaitable[Call]]] = {
    "start": starts,
    "checkpoint": checkpoints,
    "resume": resumes,
}


async def drive(call: Call, concurrency: int, seconds: float) -> int:
    """Calls completed by `concurrency` loops calling back to back for `seconds` (or until `call` has none left)."""
    done = 0
    deadline = time.monotonic() + seconds

    async def loop(index: int) -> None:
        nonlocal done
        while time.monotonic() < deadline and await call(index):
            done += 1

    await asyncio.gather(*(loop(index) for index in range(concurrency)))
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


@dataclass(frozen=True)
class Load:
    measure: str
    concurrency: int
    seconds: float
    slices: int
    pool: int
    threads: bool


async def run_round(sides: list[Side], load: Load) -> list[Tally]:
    """Each side's calls prepared, then each side driven for `seconds` in all, in `slices` turns taken alternately
    (A B, B A, ...): both sides meet the same background load. One Tally per side."""
    tallies = [Tally() for _ in sides]
    channels = [grpc.aio.insecure_channel(side.target) for side in sides]
    try:
        calls = [await MEASURES[load.measure](channel, load.concurrency, load.pool) for channel in channels]
        for turn in range(load.slices):
            order = range(len(sides)) if turn % 2 == 0 else reversed(range(len(sides)))
            for index in order:
                side, tally = sides[index], tallies[index]
                threads_before = side.thread_seconds() if load.threads else {}
                cpu_before, started = side.cpu_seconds(), time.monotonic()
                tally.done += await drive(calls[index], load.concurrency, load.seconds / load.slices)
                tally.elapsed += time.monotonic() - started
                tally.cpu += side.cpu_seconds() - cpu_before
                for name, total in (side.thread_seconds() if load.threads else {}).items():
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


def measure(base: Side, this: Side, load: Load, rounds: int) -> dict[str, float]:
    """`rounds` interleaved rounds of one measure (after an uncounted warm-up); its medians and ratios."""
    for side in (base, this):
        side.rates.clear()
        side.cpu_us.clear()
        side.thread_us.clear()
    name = load.measure
    asyncio.run(run_round([base, this], Load(name, load.concurrency, 2.0, 2, min(load.pool, 500), False)))  # warm-up
    for side in (base, this):
        if load.threads:
            side.name_threads()  # after the warm-up: threads a daemon starts on first use have started
    for round_ in range(rounds):
        sides = [base, this] if round_ % 2 == 0 else [this, base]
        tallies = asyncio.run(run_round(sides, load))
        for side, tally in zip(sides, tallies, strict=True):
            record(side, tally)
        print(
            f"{name} round {round_ + 1}: base {base.rates[-1]:7.1f}/s {base.cpu_us[-1]:6.0f} µs/{name}   "
            f"this {this.rates[-1]:7.1f}/s {this.cpu_us[-1]:6.0f} µs/{name}   "
            f"ratio {this.rates[-1] / base.rates[-1]:.3f}",
            flush=True,
        )
    for thread in sorted(base.thread_us.keys() | this.thread_us.keys()):
        base_us, this_us = (statistics.median(side.thread_us.get(thread) or [0.0]) for side in (base, this))
        print(f"{name} thread {thread:<40} base {base_us:7.0f} µs/{name}   this {this_us:7.0f} µs/{name}")
    per_round = [t / b for t, b in zip(this.rates, base.rates, strict=True)]
    return {
        f"base_{name}s_per_s": statistics.median(base.rates),
        f"this_{name}s_per_s": statistics.median(this.rates),
        f"{name}_rate_ratio": statistics.median(this.rates) / statistics.median(base.rates),
        f"{name}_rate_ratio_per_round_median": statistics.median(per_round),
        f"base_cpu_us_per_{name}": statistics.median(base.cpu_us),
        f"this_cpu_us_per_{name}": statistics.median(this.cpu_us),
        f"cpu_per_{name}_ratio": statistics.median(this.cpu_us) / statistics.median(base.cpu_us),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, type=Path, help="the baseline source tree (with its own .venv)")
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent, help="default: this tree")
    parser.add_argument("--measure", default="start", help=f"comma-separated, of: {', '.join(MEASURES)}")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per measure, each measuring both sides (at least 5)")
    parser.add_argument("--seconds", type=float, default=4.0, help="each side's driving time per round")
    parser.add_argument("--slices", type=int, default=8, help="turns per round, each side's taken alternately")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--pool", type=int, default=4000, help="resume: operations paused per side and round")
    parser.add_argument("--threads", action="store_true", help="also each daemon thread's CPU per call (needs py-spy)")
    options = parser.parse_args()
    names = [name.strip() for name in options.measure.split(",") if name.strip()]
    if unknown := [name for name in names if name not in MEASURES]:
        parser.error(f"unknown measure {', '.join(unknown)}: choose from {', '.join(MEASURES)}")
    folder = Path(tempfile.mkdtemp(prefix="pausable-paired-"))
    base = Side("base", options.base.resolve(), folder / "base")
    this = Side("this", options.tree.resolve(), folder / "this")
    result: dict[str, float] = {}
    try:
        for side in (base, this):
            side.start()
        for name in names:
            load = Load(name, options.concurrency, options.seconds, options.slices, options.pool, options.threads)
            result.update(measure(base, this, load, options.rounds))
    finally:
        for side in (base, this):
            side.stop()
    print(f"base {base.tree}\nthis {this.tree}\nlogs {folder}")
    for key, value in result.items():
        print(f"{key:<40}{value:>10.3f}")
    print(json.dumps({key: round(value, 3) for key, value in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

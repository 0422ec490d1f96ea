"""The `pausable` command against the real daemon."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from support.stack import Stack, state_is, step_running, wait_event

from pausable.cli.exits import EXIT_CANCELLED, EXIT_FAILED
from pausable.cli.launch import DaemonProcess, RedisServer, free_port
from pausable.cli.main import main
from pausable.clients import Client
from pausable.v1 import operation_pb2 as pb
from pausable.v1 import worker_pb2, worker_pb2_grpc


def pausable(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pausable.cli", "--daemon", stack.target, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_start_watch_shows_each_step_and_exits_zero_on_success(stack: Stack) -> None:
    run = pausable(stack, "start", "demo.etl", "--input", '{"rows": 4, "step_seconds": 0.05}', "--watch")
    assert run.returncode == 0, run.stderr
    assert "STEP_COMPLETED" in run.stdout and "step 5/5" in run.stdout
    ended, result = run.stdout.rstrip().splitlines()[-2:]
    assert ended.endswith("SUCCEEDED") and result.startswith('result {"summary": {"count": 2')


def test_exit_codes_tell_failed_from_errors(stack: Stack) -> None:
    failed = pausable(stack, "start", "demo.etl", "-i", '{"step_seconds": 0, "fail_at_step": 1}', "--watch")
    assert failed.returncode == EXIT_FAILED == 3
    missing = pausable(stack, "get", "0" * 32)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    bad_json = pausable(stack, "start", "demo.etl", "--input", "{nope")
    assert bad_json.returncode == 2 and "not JSON" in bad_json.stderr


def test_json_output_for_scripts(stack: Stack) -> None:
    started = pausable(stack, "-o", "json", "start", "demo.tapped", "-i", "5")
    op = json.loads(started.stdout)
    assert op["workflow"] == "demo.tapped" and len(op["id"]) == 32
    cancelled = json.loads(pausable(stack, "-o", "json", "cancel", op["id"]).stdout)
    assert cancelled["state"] in {"CANCEL_REQUESTED", "CANCELLED"}
    listed = json.loads(pausable(stack, "-o", "json", "ls", "-w", "demo.tapped").stdout)
    assert op["id"] in {o["id"] for o in listed["operations"]}


def test_every_command_has_help_with_text(stack: Stack) -> None:
    commands = ("serve", "worker", "dev", "start", "get", "ls", "pause", "resume", "cancel", "retry", "fork", "watch")
    for command in (*commands, "workflows"):
        shown = pausable(stack, command, "--help")
        assert shown.returncode == 0 and "Usage:" in shown.stdout and len(shown.stdout) > 150, command


def after(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """`pausable` with the client options after the subcommand, where users put them too."""
    return subprocess.run(
        [sys.executable, "-m", "pausable.cli", *args, "--daemon", stack.target],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_client_options_work_after_the_subcommand(stack: Stack) -> None:
    started = after(stack, "start", "demo.etl", "-q", "-i", '{"rows": 2, "step_seconds": 0}', "-l", "cli=after")
    assert started.returncode == 0, started.stderr
    operation_id = started.stdout.strip()
    assert len(operation_id) == 32 and "\n" not in operation_id, "start -q prints the id alone"
    listed = after(stack, "ls", "-o", "json", "-l", "cli=after")
    assert listed.returncode == 0, listed.stderr
    assert [o["id"] for o in json.loads(listed.stdout)["operations"]] == [operation_id], "ls filters by label"
    watched = after(stack, "watch", operation_id, "--after-seq", "0", "-o", "json")
    assert watched.returncode == 0, watched.stderr
    lines = [json.loads(line) for line in watched.stdout.splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1)) and lines[-1]["type"] == "SUCCEEDED"
    shown = after(stack, "get", operation_id, "--output", "json", "--token", "unused")
    assert json.loads(shown.stdout)["id"] == operation_id


def test_json_output_keeps_types_and_plain_names_as_stored(stack: Stack, client: Client) -> None:
    run = after(stack, "start", "demo.etl", "-o", "json", "-i", '{"rows": 3, "step_seconds": 0}', "--watch")
    assert run.returncode == 0, run.stderr
    operation_id = json.loads(run.stdout.splitlines()[0])["operation_id"]
    got = json.loads(after(stack, "get", operation_id, "-o", "json").stdout)
    stored = client.get(operation_id)
    assert got["input"] == {"rows": 3, "step_seconds": 0} and isinstance(got["input"]["rows"], int)
    assert got["result"] == stored.result and got["result"]["summary"]["count"] == 1
    assert isinstance(got["result"]["summary"]["total"], int)
    assert got["state"] == "SUCCEEDED" and got["last_seq"] == stored.last_seq and isinstance(got["last_seq"], int)
    assert (got["step"], got["total_steps"]) == (5, 5)
    flows = json.loads(after(stack, "workflows", "-o", "json").stdout)
    etl = next(w for w in flows if w["name"] == "demo.etl")
    assert etl["input_schema"]["type"] == ["object", "null"] and isinstance(etl["max_attempts"], int)


def test_failed_and_cancelled_have_exit_codes_of_their_own_listed_in_help(stack: Stack, client: Client) -> None:
    op = client.start("demo.etl", {"rows": 3, "step_seconds": 1})
    wait_event(client, op.id, state_is(pb.OPERATION_STATE_RUNNING), timeout=30)
    client.cancel(op.id)
    cancelled = after(stack, "watch", op.id)
    assert cancelled.returncode == EXIT_CANCELLED == 4, cancelled.stdout + cancelled.stderr
    usage = after(stack, "ls", "--no-such-option")
    assert usage.returncode == 2 and {EXIT_FAILED, EXIT_CANCELLED}.isdisjoint({0, 1, 2})
    for command in ([], ["watch"], ["start"]):
        shown = after(stack, *command, "--help")
        assert "3  the operation FAILED" in shown.stdout and "4  the operation was CANCELLED" in shown.stdout


def test_a_daemon_that_is_not_running_is_named_within_seconds() -> None:
    target = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = CliRunner().invoke(main, ["ls", "--daemon", target])
    elapsed = time.monotonic() - started
    assert result.exit_code == 1
    assert f"no daemon at {target} — is `pausable dev` running? (--daemon / PAUSABLE_DAEMON)" in result.output
    assert elapsed < 3.0, f"took {elapsed:.1f}s"


def test_get_cuts_long_values_unless_full(stack: Stack, client: Client) -> None:
    op = client.start("demo.etl", {"rows": 400, "step_seconds": 0.3})
    wait_event(client, op.id, step_running(0), timeout=30)  # paused after step 1, which makes the long result
    paused = client.pause(op.id)
    wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), after_seq=paused.last_seq, timeout=30)
    try:
        short = after(stack, "get", op.id)
        assert "--full shows all" in short.stdout and len(short.stdout.splitlines()) < 20, short.stdout
        full = after(stack, "get", op.id, "--full")
        assert "--full shows all" not in full.stdout and str(client.get(op.id).result["rows"][-1]) in full.stdout
    finally:
        client.cancel(op.id)


def test_start_watch_shows_the_result(stack: Stack) -> None:
    run = after(stack, "start", "demo.tapped", "-i", "5", "--watch")
    assert run.returncode == 0, run.stderr
    assert run.stdout.rstrip().splitlines()[-1] == "result 15"


def test_tappable_workflows_show_the_users_steps(stack: Stack) -> None:
    """demo.tapped: 4 plain tasks, with 2 tasks inserted by tappable() and finish; the CLI says "step k/4"."""
    run = after(stack, "start", "demo.tapped", "-i", "5", "--watch")
    assert run.returncode == 0, run.stderr
    assert "step 4/4" in run.stdout and "/6" not in run.stdout and "pause_or_continue" not in run.stdout, run.stdout
    for k in range(1, 5):
        assert f"step {k}/4 done" in run.stdout, run.stdout
    as_json = after(stack, "start", "demo.tapped", "-o", "json", "-i", "5", "--watch")
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert {e["operation"]["total_steps"] for e in events if "operation" in e} == {4}, as_json.stdout
    got = json.loads(after(stack, "get", events[0]["operation_id"], "-o", "json").stdout)
    assert (got["step"], got["total_steps"]) == (4, 4)


def test_ls_keeps_ids_whole_and_workflows_show_the_schema(stack: Stack, client: Client) -> None:
    op = client.start("demo.tapped", 1)
    narrow = subprocess.run(
        [sys.executable, "-m", "pausable.cli", "ls", "--daemon", stack.target, "-w", "demo.tapped"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COLUMNS": "60"},
    )
    assert op.id in narrow.stdout
    flows = after(stack, "workflows")
    assert "input schema" in flows.stdout and '"type": "integer"' in flows.stdout
    op.wait(timeout=60)


@pytest.mark.parametrize("command", ["start", "get", "ls", "pause", "resume", "cancel", "watch", "workflows"])
def test_help_of_operation_commands_shows_the_client_options(command: str) -> None:
    shown = CliRunner().invoke(main, [command, "--help"])
    assert shown.exit_code == 0 and "--output" in shown.output and "--daemon" in shown.output


def test_start_waits_a_few_seconds_for_a_worker_still_registering(
    stack: Stack, redis_server: RedisServer, make_database: Callable[[Path], str], tmp_path: Path
) -> None:
    """A fresh daemon with no workflow registered yet (a `pausable dev` worker starting): start waits for it."""
    tapped = next(w for w in stack.client().workflows() if w.name == "demo.tapped")
    log = tmp_path / "daemon.log"
    daemon = DaemonProcess(make_database(tmp_path), redis_server.url, log).start()
    try:
        command = [sys.executable, "-m", "pausable.cli", "start", "demo.tapped", "-q", "-i", "1", "--daemon", daemon.target]
        starting = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while "StartOperation NOT_FOUND" not in log.read_text():
            assert starting.poll() is None, starting.communicate()
            assert time.monotonic() < deadline, "the start never reached the daemon"
            time.sleep(0.05)
        with grpc.insecure_channel(daemon.target) as channel:
            workers = worker_pb2_grpc.WorkerServiceStub(channel)
            workers.RegisterWorkflows(worker_pb2.RegisterWorkflowsRequest(workflows=[tapped], worker="test"), timeout=10)
        out, err = starting.communicate(timeout=60)
        assert starting.returncode == 0, err
        assert len(out.strip()) == 32
    finally:
        daemon.stop()


def test_pause_resume_cancel_take_a_reason_and_watch_shows_who_and_why(stack: Stack, client: Client) -> None:
    op = client.start("demo.etl", {"rows": 12, "step_seconds": 0.4})
    wait_event(client, op.id, state_is(pb.OPERATION_STATE_RUNNING), timeout=30)
    paused = pausable(stack, "-o", "json", "pause", op.id, "--reason", "db maintenance [ticket 7]")
    assert paused.returncode == 0, paused.stderr
    assert json.loads(paused.stdout)["state"] == "PAUSE_REQUESTED"
    wait_event(client, op.id, state_is(pb.OPERATION_STATE_PAUSED), timeout=30)
    cancelled = after(stack, "cancel", op.id, "--reason", "not needed")
    assert cancelled.returncode == 0, cancelled.stderr

    watched = pausable(stack, "watch", op.id)
    assert watched.returncode == EXIT_CANCELLED, watched.stdout + watched.stderr
    lines = watched.stdout.splitlines()
    requested = next(line for line in lines if "PAUSE_REQUESTED " in line and line.startswith("#"))
    assert requested.endswith("[by anonymous: db maintenance [ticket 7]]"), requested
    ended = next(line for line in lines if line.split()[1:2] == ["CANCELLED"])
    assert ended.endswith("[by anonymous: not needed]"), ended
    as_json = [json.loads(line) for line in pausable(stack, "-o", "json", "watch", op.id).stdout.splitlines()]
    assert [(e["type"], e["actor"], e["reason"]) for e in as_json if e["reason"]] == [
        ("PAUSE_REQUESTED", "anonymous", "db maintenance [ticket 7]"),
        ("CANCELLED", "anonymous", "not needed"),
    ]

    too_long = pausable(stack, "resume", op.id, "--reason", "x" * 1001)
    assert too_long.returncode == 1 and "INVALID_ARGUMENT" in too_long.stderr and "keep it to 1000" in too_long.stderr


def test_pause_before_step_sets_a_breakpoint_and_cancel_force_ends_at_once(stack: Stack, client: Client) -> None:
    op = client.start("demo.etl", {"rows": 12, "step_seconds": 2})
    wait_event(client, op.id, state_is(pb.OPERATION_STATE_RUNNING), timeout=30)
    breakpoint_ = pausable(stack, "-o", "json", "pause", op.id, "--before-step", "4")
    assert breakpoint_.returncode == 0, breakpoint_.stderr
    assert (json.loads(breakpoint_.stdout)["state"], json.loads(breakpoint_.stdout)["pause_before_step"]) == ("RUNNING", 4)
    assert "pauses before step 4/5" in pausable(stack, "get", op.id).stdout
    assert pausable(stack, "pause", op.id, "--before-step", "0").returncode == 2, "a usage error: steps count from 1"
    forced = pausable(stack, "-o", "json", "cancel", op.id, "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["state"] == "CANCELLED"

"""The `pausable` command against the real daemon."""

from __future__ import annotations

import json
import subprocess
import sys

from support.stack import Stack


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
    assert run.stdout.rstrip().endswith("SUCCEEDED")


def test_exit_codes_tell_failed_from_errors(stack: Stack) -> None:
    failed = pausable(stack, "start", "demo.etl", "-i", '{"step_seconds": 0, "fail_at_step": 1}', "--watch")
    assert failed.returncode == 2
    missing = pausable(stack, "get", "0" * 32)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    bad_json = pausable(stack, "start", "demo.etl", "--input", "{nope")
    assert bad_json.returncode == 2 and "not JSON" in bad_json.stderr


def test_json_output_for_scripts(stack: Stack) -> None:
    started = pausable(stack, "-o", "json", "start", "demo.tapped", "-i", "5")
    op = json.loads(started.stdout)
    assert op["workflow"] == "demo.tapped" and len(op["id"]) == 32
    cancelled = json.loads(pausable(stack, "-o", "json", "cancel", op["id"]).stdout)
    assert cancelled["state"] in {"OPERATION_STATE_CANCEL_REQUESTED", "OPERATION_STATE_CANCELLED"}
    listed = json.loads(pausable(stack, "-o", "json", "ls", "-w", "demo.tapped").stdout)
    assert op["id"] in {o["id"] for o in listed["operations"]}


def test_every_command_has_help_with_text(stack: Stack) -> None:
    for command in ("serve", "worker", "dev", "start", "get", "ls", "pause", "resume", "cancel", "watch", "workflows"):
        shown = pausable(stack, command, "--help")
        assert shown.returncode == 0 and "Usage:" in shown.stdout and len(shown.stdout) > 150, command

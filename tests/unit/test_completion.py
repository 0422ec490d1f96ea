"""`pausable completion bash|zsh|fish` prints a script that calls pausable back through _PAUSABLE_COMPLETE."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "pausable.cli"]

MARKERS = {
    "bash": "complete -o nosort -F _pausable_completion pausable",
    "zsh": "#compdef pausable",
    "fish": "complete --no-files --command pausable",
}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], check=False, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


@pytest.mark.parametrize("shell", sorted(MARKERS))
def test_prints_a_script_for_each_shell(shell: str) -> None:
    printed = run("completion", shell)
    assert printed.returncode == 0, printed.stderr
    assert MARKERS[shell] in printed.stdout
    assert f"_PAUSABLE_COMPLETE={shell}_complete" in printed.stdout


def test_unknown_shell_is_refused_and_help_shows_the_eval_lines() -> None:
    refused = run("completion", "tcsh")
    assert refused.returncode == 2 and "bash" in refused.stderr
    shown = run("completion", "--help")
    assert 'eval "$(pausable completion bash)"' in shown.stdout and "_PAUSABLE_COMPLETE=bash_source" in shown.stdout
    assert "pausable completion bash" in run("--help").stdout


def test_the_script_completes_commands_and_choices() -> None:
    """What the bash script asks for (COMP_WORDS, COMP_CWORD) gets commands, then option choices."""
    commands = run(env={"_PAUSABLE_COMPLETE": "bash_complete", "COMP_WORDS": "pausable st", "COMP_CWORD": "1"})
    assert commands.returncode == 0 and commands.stdout.split() == ["plain,start"]
    states = run(env={"_PAUSABLE_COMPLETE": "bash_complete", "COMP_WORDS": "pausable ls --state PA", "COMP_CWORD": "3"})
    assert {word.lower() for word in states.stdout.split()} == {"plain,pause_requested", "plain,paused"}


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_accepts_the_script(tmp_path) -> None:
    script = tmp_path / "pausable.bash"
    script.write_text(run("completion", "bash").stdout)
    loaded = subprocess.run(
        ["bash", "-c", f"source {script} && complete -p pausable"], check=False, capture_output=True, text=True, timeout=30
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "_pausable_completion" in loaded.stdout

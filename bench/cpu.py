"""CPU time spent by processes and their children, from /proc (Linux): a cost that other load on the machine does not
change, where a rate does."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` itself (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime and stime, the 14th and 15th fields


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and of its living descendants (a prefork worker and its pool)."""
    return process_cpu_seconds(pid) + sum(tree_cpu_seconds(child) for child in _children(pid))

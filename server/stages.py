"""Stages: a plan entry whose members run in parallel, each as its own task, joined by the daemon.

A stage entry is a signature dict with a "stage" key (workers/registry.py
builds it; the entry's "task" is the name users see):

    {"task": "group(clean_a, clean_b)", "stage": {"members": [[entry], [entry, pause point]]}}
    {"task": "each(process_file)", "stage": {"each": [entry], "over": "files", "max_parallel": 8}}

A group's members each receive the previous result; a map's member i receives
item i of the previous result's list (of its key `over`, or the result itself
when `over` is None). Each member is a short chain (its task, then a
pass-through pause point when the task does not report itself); the task that
reports carries the member's index in the pausable_member header. The stage's
result is the list of its members' results, in member order.

The daemon dispatches a stage's members (at most `max_parallel` at once, 0:
all), records each member's result once, and joins when the last is recorded
(Store._members). Pure functions only: the store and dispatch.py apply them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

STAGE = "stage"
# At most one MEMBER_COMPLETED per operation in this time (Store._announce): a 1,000-member map of no-op tasks on
# 2 cores wrote 795 of them in 2.2 s when every recorded batch of members had its own, each sent to every watcher.
ANNOUNCE_SECONDS = 0.05


class StageInputError(ValueError):
    """A map stage's input is not a list: the operation fails with this message (code STAGE_INPUT_INVALID)."""

    code = "STAGE_INPUT_INVALID"


def is_stage(entry: Mapping[str, Any]) -> bool:
    return STAGE in entry


def entries(plan: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every task entry of a plan: its steps, and the entries of each stage's members instead of the stage itself."""
    for entry in plan:
        if not is_stage(entry):
            yield entry
            continue
        stage = entry[STAGE]
        for chain in stage["members"] if "members" in stage else [stage["each"]]:
            yield from chain


def width(stage: Mapping[str, Any], argument: Any, name: str) -> int:
    """How many members the stage has, given the previous result `argument`."""
    if "members" in stage:
        return len(stage["members"])
    return len(_items(stage, argument, name))


def max_parallel(stage: Mapping[str, Any]) -> int:
    """How many members may be dispatched and unfinished at once; 0: no bound."""
    return int(stage.get("max_parallel") or 0)


def member_chain(stage: Mapping[str, Any], member: int) -> Sequence[Mapping[str, Any]]:
    """The entries member `member` runs (its task, and a pass-through pause point when the task does not report)."""
    chain: Sequence[Mapping[str, Any]] = stage["members"][member] if "members" in stage else stage["each"]
    return chain


def member_input(stage: Mapping[str, Any], argument: Any, member: int, name: str) -> Any:
    """What member `member` receives: the previous result (group), or its item of the list (map)."""
    if "members" in stage:
        return argument
    return _items(stage, argument, name)[member]


def _items(stage: Mapping[str, Any], argument: Any, name: str) -> list[Any]:
    over = stage.get("over")
    items = argument
    if over is not None:
        if not isinstance(argument, dict) or over not in argument:
            got = f"an object with the keys {sorted(argument)[:10]}" if isinstance(argument, dict) else _kind(argument)
            raise StageInputError(
                f"stage {name!r} maps over the key {over!r} of the previous step's result, which is {got}: "
                f"make the step before it return an object with a list under {over!r}"
            )
        items = argument[over]
    if not isinstance(items, list):
        where = f"the key {over!r} of the previous step's result" if over is not None else "the previous step's result"
        raise StageInputError(
            f"stage {name!r} maps over {where}, which is {_kind(items)}, not a list: "
            "make the step before it return a list (one item per member)"
        )
    return items


def _kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def joined(results: Sequence[str]) -> str:
    """The stage's result as JSON text: its members' result texts, in member order, as one list (exact: no re-encoding)."""
    return "[" + ",".join(results) + "]"


def named(members: Sequence[int]) -> str:
    """Members as users read them: numbered from 1, runs of consecutive ones as ranges ("members 1-37, 40")."""
    runs: list[str] = []
    for member in sorted(members):
        if runs and runs[-1].split("-")[-1] == str(member):  # member is the previous one + 1 (1-based)
            runs[-1] = f"{runs[-1].split('-')[0]}-{member + 1}"
        else:
            runs.append(str(member + 1))
    return f"{'member' if len(members) == 1 else 'members'} {', '.join(runs)}"


def members_done_message(members: Sequence[int], number: int, count: int, done: int, total: int) -> str:
    """The message of a MEMBER_COMPLETED event: which members finished, each named by exactly one event."""
    return f"{named(members)} of stage {number}/{count} done ({done}/{total})"


def started_message(number: int, count: int, total: int, parallel: int) -> str:
    bound = f", at most {parallel} at a time" if 0 < parallel < total else ""
    return f"stage {number}/{count} started: {total} member{'s' if total != 1 else ''}{bound}"


def stopped_message(paused: bool, number: int, count: int, done: int, total: int) -> str:
    """PAUSED or CANCELLED within a stage once no member runs."""
    if paused:
        return (
            f"paused within stage {number}/{count}: {done}/{total} members done; "
            f"Resume runs the other {total - done}, never a finished one again"
        )
    return f"cancelled within stage {number}/{count}: {done}/{total} members were done"

"""Stop flags: the daemon's hint to workers that an operation should stop at its next step boundary.

When a Pause or Cancel is recorded, the daemon sets `pausable:stop:<id>` in
Redis (the broker the workers already use) and publishes `+<id>` on
`pausable:stop`; Resume and the end of the operation delete the key and
publish `-<id>`. Each worker process mirrors the set of flagged operations
from that channel (workers/stop_flags.py), so after each step it checks the
flag without a round trip:

- flag set after a step's body: a synchronous Checkpoint, where the
  daemon records the result and decides PAUSE, CANCEL or CONTINUE in one
  transaction;
- flag set as a step starts (it waited on the broker): the step is dropped
  with its chain and the boundary before it is reported in the background
  (`next_not_started`); the daemon decides there;
- no flag: the chain goes on at once and the checkpoint is reported in the
  background, marked `continued`, so the daemon records it but never stops
  a chain that has already moved on.

A breakpoint (Pause(before_step=N)) raises a flag of another kind when
the operation runs the user's step just before N: the daemon publishes
`?<id>` (the key's value is "breakpoint"). It is no stop of the running
step (a cooperative step's stop_requested() stays False): workers check
in with a synchronous Checkpoint at every boundary while it is up, and
keep it after a CONTINUE; a step starting under it asks before its body
runs. The daemon pauses the operation at the breakpoint and clears the flag.

The store stays the only authority: a stale flag costs one synchronous
call, or, for a dropped step, the daemon sending it again; a missing one
delays the stop by a step (and the daemon sets it again when the next
background report finds a stop requested).
"""

from __future__ import annotations

PREFIX = "pausable:stop:"
CHANNEL = "pausable:stop"
TTL_SECONDS = 7 * 24 * 3600
ENDED_TTL_SECONDS = 24 * 3600  # the flag kept for an operation cancelled by force
ASK_REASON = "breakpoint"


def key(operation_id: str) -> str:
    return PREFIX + operation_id


def set_message(operation_id: str) -> str:
    return "+" + operation_id


def ask_message(operation_id: str) -> str:
    return "?" + operation_id


def clear_message(operation_id: str) -> str:
    return "-" + operation_id


def parse(message: str) -> tuple[bool, str]:
    """(flagged, operation_id) of a message on CHANNEL; an ask (breakpoint) flag counts as flagged."""
    return message.startswith(("+", "?")), message[1:]


def asks(message: str) -> bool:
    """Whether a message on CHANNEL raises an ask (breakpoint) flag rather than a stop."""
    return message.startswith("?")

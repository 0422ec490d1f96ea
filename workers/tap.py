"""The seed recipe's API, for hand-built chains: `tappable(chain, clause, callback, nth)`.

`tappable` inserts a `pause_or_continue` task after every nth step. That
task evaluates `clause(retval)` in the same worker (no extra broker round
trip, unlike the recipe); when it is true it calls `callback(retval,
remaining)` with the remaining signatures and stops the chain.

With the defaults, the pause point is a daemon checkpoint: the decision and
the record of the result are one transaction in the daemon, which keeps the
remaining plan and the last result (as JSON, types kept) in its store.
Register the tapped chain as a workflow to run it under the daemon:

    workflow("report", tappable(chain(load.s(), render.s(), mail.s())))
"""

from __future__ import annotations

from typing import Any, cast

from celery import Task, chain
from celery.canvas import Signature, signature

from pausable.workers.app import app
from pausable.workers.task import PausableTask


@app.task(bind=True, base=PausableTask, name="pausable.pause_or_continue", stop_before_body=False)
def pause_or_continue(
    self: Task, retval: Any, clause: dict[str, Any] | None = None, callback: dict[str, Any] | None = None
) -> Any:
    """Pass `retval` on, or stop the chain here when `clause(retval)` says so.

    Without a clause, PausableTask's checkpoint after this body asks the daemon.
    """
    if clause is not None and signature(clause, app=app)(retval):
        rest = cast("list[dict[str, Any]] | None", self.request.chain)  # celery-types says str: it is the signatures
        remaining = [dict(s) for s in reversed(rest or [])]
        if callback is not None:
            signature(callback, app=app)(retval, remaining)
        self.request.chain = None
    return retval


def tappable(ch: Signature, clause: Signature | None = None, callback: Signature | None = None, nth: int = 1) -> Signature:
    """A new chain with `pause_or_continue` after every `nth` step of `ch`."""
    if nth < 1:
        raise ValueError("nth must be 1 or more")
    steps = list(ch.tasks) if hasattr(ch, "tasks") else [ch]
    tapped: list[Signature] = []
    for index, step in enumerate(steps, start=1):
        tapped.append(step)
        if index % nth == 0 and index < len(steps):
            tapped.append(
                pause_or_continue.s(clause=dict(clause) if clause else None, callback=dict(callback) if callback else None)
            )
    return chain(*tapped)

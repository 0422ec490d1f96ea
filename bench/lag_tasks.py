"""Steps for bench/loop_lag.py, run by a `pausable worker` of its own, default pool.

`lag.echo`: three steps that each return their argument, so an operation started with a large input reports that
large value as every step's result (Checkpoint / ReportSteps). The first waits 0.3 s, so StartOperation's own
handling is over before the first report arrives.
"""

from __future__ import annotations

import time
from typing import Any

from pausable.workers import step, workflow


@step(name="lag.first")
def first(value: Any) -> Any:
    time.sleep(0.3)
    return value


@step(name="lag.echo")
def echo(value: Any) -> Any:
    return value


workflow("lag.echo", [first, echo, echo], description="three steps that return their argument (loop lag bench)")

"""The Celery application that workflow modules attach their steps to.

Configured from pausable's settings (PAUSABLE_BROKER_URL); `pausable worker`
runs it with the modules named in PAUSABLE_WORKER_MODULES.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from pausable import tracing
from pausable.collector import settle_garbage_collector
from pausable.config import get_settings


def make_app() -> Celery:
    settings = get_settings()
    app = Celery("pausable", broker=settings.broker_url, include=list(settings.worker_modules))
    app.conf.update(
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app


app = make_app()
tracing.instrument_worker()  # a span per task when PAUSABLE_OTEL is on; connects nothing otherwise


@worker_process_init.connect  # each prefork child, after the fork
@worker_ready.connect  # the main process, where the solo and threads pools run tasks
def _settle_garbage_collector(**_: Any) -> None:
    """A full collection over everything a worker imported stalls a step's checkpoint by tens of milliseconds."""
    settle_garbage_collector()

"""The Celery application that workflow modules attach their steps to.

Configured from pausable's settings (PAUSABLE_BROKER_URL); `pausable worker`
runs it with the modules named in PAUSABLE_WORKER_MODULES.
"""

from __future__ import annotations

from celery import Celery

from pausable.config import get_settings
from pausable.workers import tracing


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
tracing.instrument()  # a span per task when PAUSABLE_OTEL is on; connects nothing otherwise

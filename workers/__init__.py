"""What runs inside Celery workers: steps, workflows, progress, and the seed-compatible `tappable`."""

from pausable.workers import heartbeat  # noqa: F401 - connects the step-lease heartbeat to the worker's signals
from pausable.workers.app import app
from pausable.workers.registry import Workflow, registered, workflow
from pausable.workers.steps import step
from pausable.workers.tap import pause_or_continue, tappable
from pausable.workers.task import PausableTask, progress

__all__ = ["PausableTask", "Workflow", "app", "pause_or_continue", "progress", "registered", "step", "tappable", "workflow"]

"""What runs inside Celery workers: steps, workflows, progress, and the seed-compatible `tappable`."""

from pausable.workers import (
    heartbeat,  # noqa: F401 - connects the step-lease heartbeat to the worker's signals
    terminate,  # noqa: F401 - registers the remote-control command of Cancel(force=true)
)
from pausable.workers.app import app
from pausable.workers.instep import StepStopped, checkpoint, pause_here, resume_details, stop_requested
from pausable.workers.registry import Stage, Workflow, each, group, registered, workflow
from pausable.workers.steps import step
from pausable.workers.tap import pause_or_continue, tappable
from pausable.workers.task import PausableTask, progress

__all__ = [
    "PausableTask",
    "Stage",
    "StepStopped",
    "Workflow",
    "app",
    "checkpoint",
    "each",
    "group",
    "pause_here",
    "pause_or_continue",
    "progress",
    "registered",
    "resume_details",
    "step",
    "stop_requested",
    "tappable",
    "workflow",
]

"""Celery message headers the daemon sets on every step and the worker-side checkpoint reads."""

OPERATION_HEADER = "pausable_operation_id"
STEP_HEADER = "pausable_step"
ATTEMPT_HEADER = "pausable_attempt"

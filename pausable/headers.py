"""Celery message headers the daemon sets on every step and the worker-side checkpoint reads."""

OPERATION_HEADER = "pausable_operation_id"
STEP_HEADER = "pausable_step"
ATTEMPT_HEADER = "pausable_attempt"
# The secret of the dispatch that sent the step (new on every start, resume and retry): every report
# about the step presents it, so only a worker the step was dispatched to can report on it.
STEP_TOKEN_HEADER = "pausable_step_token"
# The 0-based index of the stage member a task runs (server/stages.py); absent outside a stage.
MEMBER_HEADER = "pausable_member"

# The only Celery options a workflow's plan step may carry: its queue and its priority. Headers, task ids,
# links, countdowns... are the daemon's to set (or nobody's): a registered plan must not forge them.
PLAN_OPTIONS = frozenset({"queue", "priority"})

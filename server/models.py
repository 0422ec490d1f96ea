"""The database schema (SQLAlchemy 2.x declarative). Alembic migrations create it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    FetchedValue,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

BigId = BigInteger().with_variant(Integer(), "sqlite")


def where_set(name: str, column: str, *more: str) -> Index:
    """An index of the rows whose `column` is set (a partial index, SQLite and PostgreSQL alike).

    Most operations never have a parent, a deadline or a pause timeout, and
    none has ended while it runs; an index of NULLs gave each of them an
    entry for nothing, four b-tree inserts per started operation. The
    queries that read these indexes compare the column (`<`, `=`), which
    implies IS NOT NULL, so both planners still choose them
    (tests/integration/test_migrations.py checks both plans).
    """
    where = text(f"{column} IS NOT NULL")
    return Index(name, column, *more, sqlite_where=where, postgresql_where=where)


class Base(DeclarativeBase):
    # Every row class here is mapped to a Table (DeclarativeBase types it as any FromClause).
    __table__: ClassVar[Table]
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class OperationRow(Base):
    __tablename__ = "operations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    current_step_name: Mapped[str] = mapped_column(String(200), server_default="")
    # The plan's length: current_step runs from 0 to it (the state machine's count; see states.Numbering).
    total_steps: Mapped[int] = mapped_column(Integer, server_default="0")
    # What users see: the user's step at current_step (1-based) of step_count, plan entries a worker inserted not counted.
    step_number: Mapped[int] = mapped_column(Integer, server_default="0")
    step_count: Mapped[int] = mapped_column(Integer, server_default="0")
    # Large and never changing: loaded only where needed, not on every checkpoint.
    step_names: Mapped[list[Any]] = mapped_column(deferred=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    progress_message: Mapped[str] = mapped_column(Text, default="")
    input_json: Mapped[str] = mapped_column(Text, deferred=True)
    result_json: Mapped[str | None] = mapped_column(Text)
    plan: Mapped[list[Any]] = mapped_column(deferred=True)
    error: Mapped[dict[str, Any] | None]
    requester: Mapped[str] = mapped_column(String(200), default="")
    labels: Mapped[dict[str, Any]]
    # Unique per requester (the authenticated identity): see uq_operations_requester_request_id.
    request_id: Mapped[str | None] = mapped_column(String(200))
    # sha256 of the start request (workflow, input, labels): a repeated request_id must repeat the request.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # The last checkpoint recorded, so a retried call gets the same answer.
    checkpoint_attempt: Mapped[str] = mapped_column(String(64), server_default="")
    checkpoint_step: Mapped[int] = mapped_column(Integer, server_default="-1")
    checkpoint_decision: Mapped[str] = mapped_column(String(16), server_default="")
    # The current step's attempt (1, 2, ...): reports of an older attempt change nothing.
    attempt: Mapped[int] = mapped_column(Integer, server_default="1")
    max_attempts: Mapped[int] = mapped_column(Integer, server_default="3")
    # Until when the current step is known to be held by a worker or queued on the broker.
    lease_expires_at: Mapped[datetime | None]
    # The secret of the dispatch that sent the current step (new on every start, resume and retry; in the
    # step's pausable_step_token header): a report that would change the operation must present it.
    step_secret: Mapped[str | None] = mapped_column(String(64))
    # Fork: the operation this one was forked from and the 1-based user step it started at (0: not a fork).
    # Not a foreign key: purging the parent leaves its forks.
    parent_id: Mapped[str | None] = mapped_column(String(32))
    forked_from_step: Mapped[int] = mapped_column(Integer, server_default="0")
    # When the current step was dispatched or the step before it recorded (the step history's start times).
    step_started_at: Mapped[datetime | None]
    # Details a running step saved (workers' checkpoint()/pause_here()) and the plan index of that step: when it runs
    # again (Resume after an in-step pause, a retry after a lost worker) its resume_details() returns them.
    details_json: Mapped[str | None] = mapped_column(Text)
    details_step: Mapped[int] = mapped_column(Integer, server_default="-1")
    # A breakpoint (Pause(before_step=N)): the user step number the operation pauses before; 0: none.
    pause_before_step: Mapped[int] = mapped_column(Integer, server_default="0")
    # The running-time budget (StartOperation's deadline), what was used of it before the current run, and, while
    # the operation runs, when it runs out (timers.py). The clock stands still while PAUSED.
    deadline_seconds: Mapped[float | None] = mapped_column(Float)
    deadline_used_seconds: Mapped[float] = mapped_column(Float, server_default="0")
    deadline_at: Mapped[datetime | None]
    # A pause timeout (Pause's timeout, on_timeout "resume" or "cancel") and, while PAUSED, when it is due.
    pause_timeout_seconds: Mapped[float | None] = mapped_column(Float)
    pause_on_timeout: Mapped[str] = mapped_column(String(16), server_default="")
    pause_due_at: Mapped[datetime | None]
    # While the current step is a stage (stages.py): how many members it has, how many are done (their results in
    # stage_members) and dispatched-not-finished, and the next member index not yet dispatched in this round.
    members_total: Mapped[int] = mapped_column(Integer, server_default="0")
    members_done: Mapped[int] = mapped_column(Integer, server_default="0")
    members_running: Mapped[int] = mapped_column(Integer, server_default="0")
    members_next: Mapped[int] = mapped_column(Integer, server_default="0")
    # How many of the done members a MEMBER_COMPLETED event has named (in the order recorded), and when the last did.
    members_announced: Mapped[int] = mapped_column(Integer, server_default="0")
    members_announced_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_operations_state_id", "state", "id"),
        Index("ix_operations_workflow_id", "workflow", "id"),
        Index("ix_operations_requester_id", "requester", "id"),
        Index("ix_operations_workflow_state_id", "workflow", "state", "id"),
        where_set("ix_operations_ended_at", "ended_at"),
        Index("ix_operations_lease_expires_at", "lease_expires_at"),
        where_set("ix_operations_parent_id", "parent_id", "id"),
        where_set("ix_operations_deadline_at", "deadline_at"),
        where_set("ix_operations_pause_due_at", "pause_due_at"),
        UniqueConstraint("requester", "request_id", name="uq_operations_requester_request_id"),
    )


class LabelRow(Base):
    """Operation labels as rows, so label filters are an indexed join on every backend."""

    __tablename__ = "operation_labels"

    operation_id: Mapped[str] = mapped_column(ForeignKey("operations.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(63), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))

    __table_args__ = (Index("ix_operation_labels_key_value", "key", "value", "operation_id"),)


class EventRow(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    operation_id: Mapped[str] = mapped_column(ForeignKey("operations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(20), server_default="")
    snapshot: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    # Who asked for it (the authenticated identity) for commands: start, pause, resume, cancel; "" otherwise.
    actor: Mapped[str] = mapped_column(String(200), server_default="")
    # The free-text reason given with a pause, resume or cancel (at most 1000 characters); "" otherwise.
    reason: Mapped[str] = mapped_column(Text, server_default="")
    # The writing transaction's id on Postgres (0 on SQLite, whose single
    # writer commits in id order): (tx, id) orders the global event stream.
    tx: Mapped[int] = mapped_column(BigInteger, server_default=FetchedValue())

    __table_args__ = (
        UniqueConstraint("operation_id", "seq", name="uq_events_operation_seq"),
        Index("ix_events_tx_id", "tx", "id"),
    )


class StepResultRow(Base):
    """The step history: each step's result as recorded (kind "result"), a failed step ("failed"), an input Resume
    replaced ("input", with the value it replaced). Deleted with its operation (retention, DeleteOperation)."""

    __tablename__ = "step_results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    operation_id: Mapped[str] = mapped_column(ForeignKey("operations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    step: Mapped[int] = mapped_column(Integer)  # the plan index
    step_number: Mapped[int] = mapped_column(Integer)  # the 1-based user step
    name: Mapped[str] = mapped_column(String(200), server_default="")
    attempt: Mapped[int] = mapped_column(Integer, server_default="1")
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime]
    result_json: Mapped[str | None] = mapped_column(Text)
    result_bytes: Mapped[int] = mapped_column(BigInteger, server_default="0")
    previous_json: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_step_results_operation_id", "operation_id", "id"),)


class StageMemberRow(Base):
    """A member of an operation's running stage that was sent or has finished. With a result: finished, recorded once
    (the primary key), so Resume and Retry never run it again. Without one: out on the broker or a worker while it
    has a lease (renewed by the heartbeats of the worker holding it; a lapsed one is sent again, Store.members_lost),
    or, without a lease, dropped under a requested pause or cancel, to send again. Deleted when the stage joins."""

    __tablename__ = "stage_members"

    operation_id: Mapped[str] = mapped_column(ForeignKey("operations.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)  # the stage's plan index
    member: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_json: Mapped[str | None] = mapped_column(Text)
    ended_at: Mapped[datetime]  # when it finished (with a result); else when it was sent or dropped
    seq: Mapped[int | None] = mapped_column(Integer)  # the order results were recorded in: 1, 2, ... (members_done then)
    lease_expires_at: Mapped[datetime | None]
    sends: Mapped[int] = mapped_column(Integer, server_default="1")  # how many times it was sent in this attempt

    __table_args__ = (Index("ix_stage_members_lease_expires_at", "lease_expires_at"),)


class RequestRow(Base):
    """Idempotency keys of Pause/Resume/Cancel calls already applied."""

    __tablename__ = "requests"

    request_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    operation_id: Mapped[str] = mapped_column(ForeignKey("operations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]


class WorkflowRow(Base):
    __tablename__ = "workflows"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    steps: Mapped[list[Any]]
    input_schema: Mapped[dict[str, Any] | None]
    plan: Mapped[list[Any]]
    worker: Mapped[str] = mapped_column(String(200), default="")
    registered_at: Mapped[datetime]
    max_attempts: Mapped[int] = mapped_column(Integer, server_default="3")


class OutboxRow(Base):
    """Chains committed as dispatched and not yet known to be on the broker (see engine.py)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    operation_id: Mapped[str] = mapped_column(ForeignKey("operations.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)  # the dispatch's first step; its messages are rebuilt from the operation
    created_at: Mapped[datetime]
    members: Mapped[list[Any] | None] = mapped_column(JSON)  # a stage's dispatch: the members it sends (stages.py)


class BulkActionRow(Base):
    """A BulkPause/BulkResume/BulkCancel: what it covers, its progress, and where it is (bulk.py, Store.bulk_batch)."""

    __tablename__ = "bulk_actions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # pause, resume, cancel (states.Command)
    state: Mapped[str] = mapped_column(String(16))  # RUNNING, DONE
    requester: Mapped[str] = mapped_column(String(200), server_default="")
    request_id: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200), server_default="")
    reason: Mapped[str] = mapped_column(Text, server_default="")
    # Non-empty: the caller steers only its own operations; others of the ids given fail (PERMISSION_DENIED).
    owner: Mapped[str] = mapped_column(String(200), server_default="")
    operation_ids: Mapped[list[Any] | None] = mapped_column(JSON)  # sorted, unique; or None with a selector
    selector: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    cursor: Mapped[str] = mapped_column(String(32), server_default="")  # the last operation id processed
    matched: Mapped[int] = mapped_column(Integer, server_default="0")
    done: Mapped[int] = mapped_column(Integer, server_default="0")
    skipped: Mapped[int] = mapped_column(Integer, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, server_default="0")
    skipped_reasons: Mapped[dict[str, Any]]
    failures: Mapped[list[Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_bulk_actions_state", "state"),
        UniqueConstraint("requester", "request_id", name="uq_bulk_actions_requester_request_id"),
    )

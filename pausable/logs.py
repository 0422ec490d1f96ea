"""Logging for `pausable serve` and `pausable worker`: text for a terminal, or one JSON object per line.

Every record about an operation carries its `operation_id`: the daemon sets
`OPERATION_ID` for each RPC whose request names an operation (see
pausable.server.rpcobserver), the worker sets it around each task from the
`pausable_operation_id` Celery header, and `OperationIdFilter` (on the
handler, so it sees records of every logger) copies it onto the record. Code
that knows the operation without the context passes
`extra={"operation_id": ...}`, which wins.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from pausable.headers import OPERATION_HEADER

LogFormat = Literal["text", "json"]
FORMATS: tuple[LogFormat, ...] = ("text", "json")

OPERATION_ID: ContextVar[str | None] = ContextVar("pausable_operation_id", default=None)

# Attributes every LogRecord has; anything else on a record came from `extra=` and goes into the JSON object.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "operation_id", "operation", "taskName"}


class OperationIdFilter(logging.Filter):
    """Sets `record.operation_id` from the context unless the call passed one in `extra`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "operation_id", None) is None:
            record.operation_id = OPERATION_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, operation_id, and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        operation_id = getattr(record, "operation_id", None)
        if operation_id:
            entry["operation_id"] = operation_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [operation] message`; the bracket only when the record is about an operation."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(operation)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        operation_id = getattr(record, "operation_id", None)
        record.operation = f" [{operation_id}]" if operation_id else ""
        return super().format(record)


class LoggerWriter:
    """A file-like object that turns written lines into log records (stray prints stay one JSON object per line)."""

    def __init__(self, logger: logging.Logger, level: int, fallback: TextIO) -> None:
        self.logger = logger
        self.level = level
        self.fallback = fallback
        self._partial = ""
        self._busy = False

    def write(self, text: str) -> int:
        if self._busy:  # a handler that writes to this very stream: do not loop
            return self.fallback.write(text)
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        self._busy = True
        try:
            for line in lines:
                if line.strip():
                    self.logger.log(self.level, line.rstrip())
        finally:
            self._busy = False
        return len(text)

    def flush(self) -> None:
        if self._partial.strip():
            line, self._partial = self._partial, ""
            self.write(line + "\n")

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.fallback.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.fallback, "encoding", "utf-8")


def make_handler(log_format: LogFormat, stream: TextIO | None = None) -> logging.Handler:
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.__stderr__)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(OperationIdFilter())
    return handler


def configure(log_format: LogFormat = "text", level: int | str = logging.INFO, *, capture_stdout: bool | None = None) -> None:
    """Send every logger's records to stderr in `log_format`; replaces the root logger's handlers.

    With JSON, print() output (stdout) becomes log records too, unless
    `capture_stdout` is False, so every line of the output is JSON.
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(make_handler(log_format))
    root.setLevel(level)
    logging.captureWarnings(True)
    if (capture_stdout if capture_stdout is not None else log_format == "json") and not isinstance(sys.stdout, LoggerWriter):
        sys.stdout = LoggerWriter(logging.getLogger("stdout"), logging.INFO, sys.__stdout__)  # type: ignore[arg-type]  # None only without a console


def configure_worker(app: Any, log_format: LogFormat) -> None:
    """With JSON, pausable (not Celery) sets up the worker's logging, and every task's lines carry its operation_id.

    Call before `app.worker_main`. The prefork pool forks after this, so its
    children inherit the handlers and the signal receivers.
    """
    from celery import signals

    if log_format == "text":
        return  # Celery's own text format, which names the task

    def enter(task: Any = None, **_: Any) -> None:
        request = getattr(task, "request", None)
        OPERATION_ID.set(getattr(request, OPERATION_HEADER, None) if request is not None else None)

    def leave(**_: Any) -> None:
        OPERATION_ID.set(None)

    # Celery logs a task's success or failure before task_postrun, so those lines carry the id too.
    signals.task_prerun.connect(enter, weak=False)
    signals.task_postrun.connect(leave, weak=False)

    capture_stdout = bool(app.conf.worker_redirect_stdouts)

    def setup(loglevel: int | str | None = None, **_: Any) -> None:
        configure("json", loglevel or logging.INFO, capture_stdout=capture_stdout)

    configure("json", logging.INFO, capture_stdout=capture_stdout)  # already for warnings before Celery sets up logging
    signals.setup_logging.connect(setup, weak=False)

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
import threading
import time
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
    """`time LEVEL logger [operation] message`; the bracket only when the record is about an operation.

    The text is logging.Formatter's for that format string, made with less
    work: the date and time are formatted once per second (localtime and
    strftime were a third of a record's formatting), and the line is an
    f-string rather than `%` over the record's __dict__. A started operation
    logs two lines on the event loop: 5.8 -> 4.9 us a line (timeit of the
    daemon's two lines through the batching handler, to /dev/null).
    """

    FORMAT = "%(asctime)s %(levelname)s %(name)s%(operation)s %(message)s"

    def __init__(self) -> None:
        super().__init__(self.FORMAT)
        self._second: tuple[int, str] = (-1, "")  # a whole second of record.created and its text, replaced at once

    def format(self, record: logging.LogRecord) -> str:
        operation_id = getattr(record, "operation_id", None)
        record.operation = f" [{operation_id}]" if operation_id else ""
        return super().format(record)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached, text = self._second
        if cached != second:
            text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (second, text)
        return f"{text},{int(record.msecs):03d}"  # default_msec_format

    def formatMessage(self, record: logging.LogRecord) -> str:
        return f"{record.asctime} {record.levelname} {record.name}{getattr(record, 'operation', '')} {record.message}"


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


class BatchingStreamHandler(logging.StreamHandler):
    """A StreamHandler that writes DEBUG and INFO lines together, at most `flush_seconds` after they were logged.

    `pausable serve` logs two INFO lines per started operation (the RPC and its
    STARTED event), most of them on the event loop. StreamHandler writes and
    flushes each line: one write() system call, after which the loop thread
    waits to take the GIL back. Measured with bench/paired_rates.py (start,
    6 rounds, against the tree before issue 10, which logs the same lines):
    0.85-0.86x its starts per second with a write per line, 0.91x with the
    lines written in batches, the loop's CPU per start 565 -> 531 us. Here
    the logging thread only formats the line and queues it;
    a thread of this handler writes what has queued in one call. A record at
    WARNING or above writes everything queued before it at once, and so does
    a queue of MAX_QUEUED lines, or logging.shutdown at exit. A SIGKILL loses
    at most the last `flush_seconds` of DEBUG and INFO lines. (The stdlib's
    MemoryHandler buffers too, but has no time limit and hands its target the
    records one by one: still a write per line.)
    """

    MAX_QUEUED = 1000

    def __init__(self, stream: TextIO, flush_seconds: float) -> None:
        super().__init__(stream)
        self.flush_seconds = flush_seconds
        self._queued: list[str] = []
        self._waiting = threading.Event()  # lines are queued
        self._stopping = threading.Event()
        threading.Thread(target=self._write_soon, name="pausable-log-writer", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        """(Under the handler's lock, as Handler.handle calls it.)"""
        try:
            self._queued.append(self.format(record) + self.terminator)
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - as StreamHandler.emit: report it, go on
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING or len(self._queued) >= self.MAX_QUEUED:
            self._write()
        elif not self._waiting.is_set():
            self._waiting.set()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # Handler.createLock sets it
            self._write()

    def close(self) -> None:
        self.flush()
        self._stopping.set()
        self._waiting.set()
        super().close()

    def _write(self) -> None:
        """(Under the handler's lock.)"""
        self._waiting.clear()
        if self._queued:
            text, self._queued = "".join(self._queued), []
            try:
                self.stream.write(text)
                self.stream.flush()
            except Exception:  # noqa: BLE001 - the stream failed: as logging does, say so on stderr and go on
                self.handleError(
                    logging.makeLogRecord({"msg": "writing %d queued log lines failed", "args": (text.count("\n"),)})
                )

    def _write_soon(self) -> None:
        while self._waiting.wait() and not self._stopping.wait(self.flush_seconds):
            self.flush()


def make_handler(log_format: LogFormat, stream: TextIO | None = None, flush_seconds: float = 0.0) -> logging.Handler:
    """A handler of `log_format` lines to `stream` (stderr); `flush_seconds` > 0 writes them in batches (see
    BatchingStreamHandler)."""
    if log_format not in FORMATS:
        raise ValueError(f"log format {log_format!r} is not one of {', '.join(FORMATS)}")
    target = stream or sys.__stderr__
    if flush_seconds > 0 and target is not None:
        handler: logging.Handler = BatchingStreamHandler(target, flush_seconds)
    else:
        handler = logging.StreamHandler(target)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(OperationIdFilter())
    return handler


def configure(
    log_format: LogFormat = "text",
    level: int | str = logging.INFO,
    *,
    capture_stdout: bool | None = None,
    flush_seconds: float = 0.0,
) -> None:
    """Send every logger's records to stderr in `log_format`; replaces the root logger's handlers.

    With JSON, print() output (stdout) becomes log records too, unless
    `capture_stdout` is False, so every line of the output is JSON.
    `flush_seconds` > 0: DEBUG and INFO lines are written in batches, at most that long after they were logged.
    """
    # Neither format shows where a record was made (file, line), nor its thread or process: not looking them up
    # saves ~2 us of each record's ~8.6 (the logging HOWTO's "Optimization" settings).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, BatchingStreamHandler):
            old.close()
    root.addHandler(make_handler(log_format, flush_seconds=flush_seconds))
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

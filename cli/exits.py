"""The exit codes of the `pausable` command; FAILED and CANCELLED have codes nothing else uses (click's usage errors
exit 2, every other error 1)."""

from __future__ import annotations

from pausable.v1 import operation_pb2 as pb

EXIT_ERROR = 1  # a call failed (the message names the gRPC status), or no daemon answered
EXIT_USAGE = 2  # click: a bad option or argument
EXIT_FAILED = 3
EXIT_CANCELLED = 4
EXIT_CODES = {
    pb.OPERATION_STATE_SUCCEEDED: 0,
    pb.OPERATION_STATE_FAILED: EXIT_FAILED,
    pb.OPERATION_STATE_CANCELLED: EXIT_CANCELLED,
}

EXIT_HELP = (
    "\b\nExit codes:\n"
    "  0  done (with --watch / watch: the operation SUCCEEDED)\n"
    "  1  error: the call failed (the message names the gRPC status) or no daemon answered\n"
    "  2  usage error (a bad option or argument)\n"
    f"  {EXIT_FAILED}  the operation FAILED (start --watch, watch)\n"
    f"  {EXIT_CANCELLED}  the operation was CANCELLED (start --watch, watch)"
)

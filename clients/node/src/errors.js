/**
 * Error classes for failed calls, one per gRPC status code, like the Python
 * SDK's `pausable.clients.errors`. Each carries the numeric gRPC status `code`
 * (also on the class: `NotFound.code === 5`), its name (`codeName`, e.g.
 * "NOT_FOUND") and the server's message (`details`, also the error's
 * `message`), which says what to do instead.
 *
 *   try { await client.resume(id); }
 *   catch (error) { if (error instanceof FailedPrecondition) ...; else throw error; }
 */
import { status } from '@grpc/grpc-js';

const CODE_NAMES = Object.fromEntries(Object.entries(status).map(([name, code]) => [code, name]));

/** Base of every error the client throws for a failed call (and of OperationFailed). */
export class PausableError extends Error {
  /**
   * @param {string} message the server's message
   * @param {number} [code] the gRPC status code (default: the class's)
   * @param {import('@grpc/grpc-js').Metadata} [metadata] the call's trailing metadata
   * @param {object} [options] `{ cause }`, the original grpc-js error
   */
  constructor(message, code = new.target.code ?? status.UNKNOWN, metadata = undefined, options = undefined) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.codeName = CODE_NAMES[code] ?? 'UNKNOWN';
    this.details = message;
    this.metadata = metadata;
  }
}

const define = (name, code) => {
  const cls = { [name]: class extends PausableError {} }[name];
  cls.code = code;
  return cls;
};

export const Cancelled = define('Cancelled', status.CANCELLED);
export const Unknown = define('Unknown', status.UNKNOWN);
export const InvalidArgument = define('InvalidArgument', status.INVALID_ARGUMENT);
export const DeadlineExceeded = define('DeadlineExceeded', status.DEADLINE_EXCEEDED);
export const NotFound = define('NotFound', status.NOT_FOUND);
export const AlreadyExists = define('AlreadyExists', status.ALREADY_EXISTS);
export const PermissionDenied = define('PermissionDenied', status.PERMISSION_DENIED);
export const ResourceExhausted = define('ResourceExhausted', status.RESOURCE_EXHAUSTED);
export const FailedPrecondition = define('FailedPrecondition', status.FAILED_PRECONDITION);
export const Aborted = define('Aborted', status.ABORTED);
export const OutOfRange = define('OutOfRange', status.OUT_OF_RANGE);
export const Unimplemented = define('Unimplemented', status.UNIMPLEMENTED);
export const Internal = define('Internal', status.INTERNAL);
export const Unavailable = define('Unavailable', status.UNAVAILABLE);
export const DataLoss = define('DataLoss', status.DATA_LOSS);
export const Unauthenticated = define('Unauthenticated', status.UNAUTHENTICATED);

/**
 * `client.result(id)` on an operation that ended FAILED or CANCELLED (as the
 * Python SDK's `Operation.wait()`); `operation` is its final state, with
 * `operation.error` for a failure. Its `code` is UNKNOWN, as in Python: no call failed.
 */
export class OperationFailed extends PausableError {
  constructor(operation) {
    const error = operation.error ? `: ${operation.error.code}: ${operation.error.message}` : '';
    super(`operation ${operation.id} ended ${operation.state}${error}`);
    this.operation = operation;
  }
}

const BY_CODE = new Map(
  [Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists, PermissionDenied, ResourceExhausted,
    FailedPrecondition, Aborted, OutOfRange, Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated]
    .map((cls) => [cls.code, cls]),
);

/** The PausableError subclass for a numeric gRPC status code (PausableError itself for OK or an unknown number). */
export function errorClass(code) {
  return BY_CODE.get(code) ?? PausableError;
}

/** A grpc-js ServiceError -> the matching PausableError subclass (other errors pass through). */
export function fromServiceError(error) {
  if (error instanceof PausableError || typeof error?.code !== 'number') return error;
  const Class = errorClass(error.code);
  return new Class(error.details || CODE_NAMES[error.code] || error.message, error.code, error.metadata, { cause: error });
}

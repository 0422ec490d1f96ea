/**
 * Error classes for failed calls. Each carries the numeric gRPC status `code`,
 * its name (`codeName`, e.g. "NOT_FOUND") and the server's message
 * (`details`, also the error's `message`), which says what to do instead.
 */
import { status } from '@grpc/grpc-js';

const CODE_NAMES = Object.fromEntries(Object.entries(status).map(([name, code]) => [code, name]));

export class PausableError extends Error {
  constructor(message, code = new.target.code ?? status.UNKNOWN, metadata = undefined) {
    super(message);
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

export const InvalidArgument = define('InvalidArgument', status.INVALID_ARGUMENT);
export const NotFound = define('NotFound', status.NOT_FOUND);
export const AlreadyExists = define('AlreadyExists', status.ALREADY_EXISTS);
export const FailedPrecondition = define('FailedPrecondition', status.FAILED_PRECONDITION);
export const Unavailable = define('Unavailable', status.UNAVAILABLE);
export const DeadlineExceeded = define('DeadlineExceeded', status.DEADLINE_EXCEEDED);
export const ResourceExhausted = define('ResourceExhausted', status.RESOURCE_EXHAUSTED);
export const Unauthenticated = define('Unauthenticated', status.UNAUTHENTICATED);
export const PermissionDenied = define('PermissionDenied', status.PERMISSION_DENIED);
export const Cancelled = define('Cancelled', status.CANCELLED);
export const Internal = define('Internal', status.INTERNAL);

const BY_CODE = new Map(
  [InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, Unavailable, DeadlineExceeded, ResourceExhausted,
    Unauthenticated, PermissionDenied, Cancelled, Internal].map((cls) => [cls.code, cls]),
);

/** A grpc-js ServiceError -> the matching PausableError subclass (other errors pass through). */
export function fromServiceError(error) {
  if (error instanceof PausableError || typeof error?.code !== 'number') return error;
  const Class = BY_CODE.get(error.code) ?? PausableError;
  return new Class(error.details || CODE_NAMES[error.code] || error.message, error.code, error.metadata);
}

// Types of @pausable/client (src/index.js). Hand-written; test/package.test.js
// checks that every name exported here exists at run time and the other way round.

import type { ChannelCredentials, ChannelOptions, Metadata } from '@grpc/grpc-js';

/** A JSON value as the client hands it over: integers beyond ±(2^53 - 1) are BigInt. */
export type JsonValue = null | boolean | number | bigint | string | JsonValue[] | { [key: string]: JsonValue };

export type OperationState =
  | 'UNSPECIFIED'
  | 'PENDING'
  | 'RUNNING'
  | 'PAUSE_REQUESTED'
  | 'PAUSED'
  | 'CANCEL_REQUESTED'
  | 'SUCCEEDED'
  | 'FAILED'
  | 'CANCELLED';

/**
 * A stage (a group of parallel members, or a map over a list) appends STAGE_STARTED, then MEMBER_COMPLETED (one
 * event per batch of members, its message naming each), then STAGE_COMPLETED instead of STEP_COMPLETED.
 */
export type EventType =
  | 'UNSPECIFIED'
  | 'CREATED'
  | 'STARTED'
  | 'STEP_COMPLETED'
  | 'PROGRESS'
  | 'PAUSE_REQUESTED'
  | 'PAUSED'
  | 'RESUMED'
  | 'CANCEL_REQUESTED'
  | 'CANCELLED'
  | 'SUCCEEDED'
  | 'FAILED'
  | 'STEP_RETRIED'
  | 'RETRIED'
  | 'STAGE_STARTED'
  | 'MEMBER_COMPLETED'
  | 'STAGE_COMPLETED';

export interface OperationError {
  /** A short machine-readable code, e.g. the exception class name. */
  code: string;
  message: string;
  /** 1-based number of the step that failed ("step 3/5"); null when no step was involved. */
  step: number | null;
  /** The proto's raw `step`: the 0-based index of the failed step, -1 when no step was involved. */
  stepIndex: number;
  stepName: string;
  /** The worker's traceback of the failed step (its end); "" when the daemon decided the error (WORKER_LOST). */
  traceback: string;
  /** When a member of a stage failed: its 0-based index in the stage; null otherwise. */
  memberIndex: number | null;
}

/** The members of the running stage (a group, or a map over the previous result's list): "stage 2/3 · 37/200 done". */
export interface StageProgress {
  /** How many members the stage has (for a map: the length of the list it maps over). */
  membersTotal: number;
  membersDone: number;
  /** Dispatched and not finished (queued or running). */
  membersRunning: number;
}

export interface Operation {
  id: string;
  /** The workflow's registered name, e.g. "demo.etl". */
  workflow: string;
  state: OperationState;
  /**
   * 1-based step number as users see it ("step 3/5", as the CLI prints it): the
   * step running now, or, when paused, the one Resume runs first; `totalSteps`
   * once every step has finished. Counts the user's steps only, not the tasks
   * `tappable` inserts.
   */
  step: number;
  /** The proto's raw `current_step`: the 0-based index in the plan, inserted entries (tappable's pause points) included. */
  currentStep: number;
  totalSteps: number;
  currentStepName: string;
  /** Progress of the current step, 0.0 to 1.0. */
  progress: number;
  progressMessage: string;
  /** While the current step is a stage of parallel members: how many it has, are done and are running; null otherwise. */
  stage: StageProgress | null;
  /** The input (from `input_json` when the daemon sends it, exact; else from the Value). Null in list() without `full`. */
  input: JsonValue;
  /** The final result once SUCCEEDED; the last step's result while PAUSED; null otherwise and in list() without `full`. */
  result: JsonValue;
  error: OperationError | null;
  requester: string;
  labels: Record<string, string>;
  createTime: Date | null;
  updateTime: Date | null;
  endTime: Date | null;
  /** The seq of the newest event; pass it to watch() as `afterSeq` to follow on. */
  lastSeq: number;
  /** The current step's attempt: 1, then 2, 3 ... each time the step is lost and dispatched again. */
  attempt: number;
  /** Until when the current step is known to be held by a live worker or queued; null when paused or finished. */
  leaseExpireTime: Date | null;
  /** Fork: the operation this one was forked from; '' for an operation that was started. */
  parentId: string;
  /** The 1-based step a fork started at; 0 for an operation that was started. */
  forkedFromStep: number;
  /** A pending breakpoint set by pause(id, { beforeStep: N }): the step N it pauses before; 0 when none. */
  pauseBeforeStep: number;
  /** The running-time budget given at start (seconds); null without one. */
  deadlineSeconds: number | null;
  /** Running time used of the budget (seconds; time PAUSED not counted); null without a budget. */
  deadlineUsedSeconds: number | null;
  /** When the budget runs out if the operation keeps running; null while PAUSED, finished or without one. */
  deadlineTime: Date | null;
  /** While PAUSED with a pause timeout: when the daemon resumes or cancels it (`pauseOnTimeout`). */
  pauseTimeoutTime: Date | null;
  pauseOnTimeout: '' | 'resume' | 'cancel';
}

export interface BulkAction {
  id: string;
  kind: 'pause' | 'resume' | 'cancel';
  /** DONE once every matched operation was processed. */
  state: 'RUNNING' | 'DONE';
  /** The ids given, or the operations the selection matched when the action was created; once DONE, done + skipped + failed. */
  matched: number;
  done: number;
  skipped: number;
  failed: number;
  /** Skipped operations counted by reason, e.g. { 'already PAUSED': 3 }. */
  skippedReasons: Record<string, number>;
  /** The first 20 operations that failed, and why. */
  failures: Array<{ operationId: string; message: string }>;
  reason: string;
  actor: string;
  createTime: Date | null;
  endTime: Date | null;
}

export interface BulkSelection {
  /** These operations (at most 10,000); else every operation matching the filters below (none: every operation). */
  ids?: string[];
  states?: Array<OperationState | `OPERATION_STATE_${OperationState}` | number>;
  workflow?: string;
  labels?: Record<string, string>;
  requester?: string;
  /** Idempotency key: the same requestId returns the same bulk action. Default: a fresh UUID. */
  requestId?: string;
  /** Recorded on every operation's event. */
  reason?: string;
}

export interface OperationEvent {
  operationId: string;
  /** 1, 2, 3 ... per operation, without gaps. */
  seq: number;
  type: EventType;
  /** True for SUCCEEDED, FAILED and CANCELLED: the last event of the operation. */
  terminal: boolean;
  time: Date | null;
  message: string;
  /** The authenticated identity that sent the command; empty for events the workers or the daemon caused. */
  actor: string;
  /** The reason given with the Pause, Resume or Cancel that caused this event; empty otherwise. */
  reason: string;
  /** The operation as it stood right after this event. */
  operation: Operation;
}

export interface Workflow {
  name: string;
  description: string;
  /** Task names of the steps, in order. */
  steps: string[];
  /** JSON Schema the input must satisfy; null when any JSON value is accepted. */
  inputSchema: JsonValue;
  registerTime: Date | null;
  planJson: string;
  /** How many times a step may be dispatched when it is lost; 0 means the default, 3. */
  maxAttempts: number;
}

export interface ClientOptions {
  /** Default: insecure (plaintext); e.g. `grpc.credentials.createSsl(ca, key, cert)`. */
  credentials?: ChannelCredentials;
  /** Bearer token, sent as `authorization: Bearer <token>` on every call; default: PAUSABLE_TOKEN, else the file PAUSABLE_TOKEN_FILE names. */
  token?: string;
  /** How long unary calls retry UNAVAILABLE and RESOURCE_EXHAUSTED (reads: DEADLINE_EXCEEDED too); default 10. */
  retrySeconds?: number;
  /** Deadline of each unary attempt; default 30. */
  timeoutSeconds?: number;
  /** How long watch() keeps reconnecting without receiving an event; default 60. */
  reconnectSeconds?: number;
  channelOptions?: ChannelOptions;
  /** Folder holding pausable/v1/operation.proto; default DEFAULT_PROTO_DIR (the package's own copy). */
  protoDir?: string;
}

export interface StartOptions {
  /** Idempotency key: the same requestId returns the same operation. Default: a fresh UUID. */
  requestId?: string;
  requester?: string;
  labels?: Record<string, string>;
  /** A budget of running time, in seconds (time PAUSED does not count): past it the operation is cancelled (DEADLINE_EXCEEDED). */
  deadlineSeconds?: number;
}

export interface ListOptions {
  /** 'PAUSED' or 'OPERATION_STATE_PAUSED'; empty: every state. */
  states?: Array<OperationState | `OPERATION_STATE_${OperationState}` | number>;
  workflow?: string;
  /** 1 to 1000; 0 means 50. */
  pageSize?: number;
  pageToken?: string;
  /** Include each operation's input and result (OPERATION_VIEW_FULL). */
  full?: boolean;
}

export interface ListPage {
  /** Newest first. */
  operations: Operation[];
  /** Empty on the last page. */
  nextPageToken: string;
  /** WatchEvents' after_cursor that follows every change after this page was read (list, then watch). */
  eventsCursor: string;
}

export interface CommandOptions {
  requestId?: string;
  /** A free-text note of why (at most 1000 characters), recorded with the actor on the event(s) the command appends. */
  reason?: string;
}

export interface ForkOptions extends CommandOptions {
  /** What the first step of the fork receives; default: what that step received in the parent. */
  input?: unknown;
  /** Labels of the fork, added to the parent's. */
  labels?: Record<string, string>;
}

/** An entry of an operation's step history. */
export interface StepRecord {
  /** RESULT: a step finished; FAILED: it failed; INPUT: Resume replaced what the step receives. */
  kind: 'RESULT' | 'FAILED' | 'INPUT' | string;
  /** The 1-based user step. */
  step: number;
  name: string;
  attempt: number;
  startTime: Date | null;
  endTime: Date | null;
  /** null when the start is not known. */
  durationSeconds: number | null;
  /** Bytes of the result's JSON text. */
  resultBytes: number;
  /** The 0-based plan index. */
  planIndex: number;
  /** The value, when read (`history(id, { results: true })`); INPUT: the new value. */
  result?: unknown;
  /** INPUT: the value it replaced, when read. */
  previous?: unknown;
}

export interface OperationHistory {
  operation: Operation;
  steps: StepRecord[];
  /** Ids of the operations forked from this one, oldest first. */
  forks: string[];
}

export interface PauseOptions extends CommandOptions {
  /** A breakpoint: the operation stays RUNNING and pauses when it reaches step N (1-based); resume() withdraws it. */
  beforeStep?: number;
  /** Once PAUSED this long (seconds) with nobody resuming it, the daemon does `onTimeout`. */
  timeoutSeconds?: number;
  onTimeout?: 'resume' | 'cancel';
}

export interface CancelOptions extends CommandOptions {
  /** Cancel a running operation at once: its running step is terminated (its worker process killed). */
  force?: boolean;
}

export interface WatchOptions {
  /** Events with a seq greater than this; 0 (the default) replays the whole history. */
  afterSeq?: number;
  signal?: AbortSignal;
  /** Overrides the client's `reconnectSeconds` for this watch. */
  reconnectSeconds?: number;
}

export interface WaitOptions {
  signal?: AbortSignal;
}

export class Client {
  constructor(target: string, options?: ClientOptions);
  readonly target: string;
  retrySeconds: number;
  timeoutSeconds: number;
  reconnectSeconds: number;
  close(): void;
  /** Starts `workflow` with `input` (any JSON value); resolves to the new operation. */
  start(workflow: string, input?: unknown, options?: StartOptions): Promise<Operation>;
  get(id: string): Promise<Operation>;
  list(options?: ListOptions): Promise<ListPage>;
  /**
   * PAUSE_REQUESTED, then PAUSED at the next step boundary; with `beforeStep`, a breakpoint at that step; with
   * `timeoutSeconds`, resumed or cancelled (`onTimeout`) once PAUSED that long.
   */
  pause(id: string, options?: PauseOptions): Promise<Operation>;
  /**
   * Resumes a PAUSED operation, or withdraws a pause that has not taken effect yet; `input` replaces what the next
   * step receives (only when PAUSED; checked against that step's input schema).
   */
  resume(id: string, options?: CommandOptions & { input?: unknown }): Promise<Operation>;
  /** Runs a FAILED or CANCELLED operation again from the step that failed (or was interrupted). */
  retry(id: string, options?: CommandOptions): Promise<Operation>;
  /** A new operation of the same workflow starting at the 1-based `fromStep`, fed what that step received (or `input`). */
  fork(id: string, fromStep: number, options?: ForkOptions): Promise<Operation>;
  /** The operation with its step history (oldest first) and the ids of its forks; `results`: each step's result too. */
  history(id: string, options?: { results?: boolean }): Promise<OperationHistory>;
  /** At once when PAUSED or PENDING, otherwise at the next step boundary; with `force`, at once, the step terminated. */
  cancel(id: string, options?: CancelOptions): Promise<Operation>;
  workflows(): Promise<Workflow[]>;
  /** Every event after `afterSeq`, once each, in seq order, until the terminal one; reconnects on UNAVAILABLE. */
  watch(id: string, options?: WatchOptions): AsyncGenerator<OperationEvent, void, undefined>;
  /** Resolves to the operation once it is SUCCEEDED, FAILED or CANCELLED. */
  wait(id: string, options?: WaitOptions): Promise<Operation>;
  /** Pauses many operations in the background; resolves at once to the bulk action. */
  bulkPause(selection?: BulkSelection): Promise<BulkAction>;
  bulkResume(selection?: BulkSelection): Promise<BulkAction>;
  bulkCancel(selection?: BulkSelection): Promise<BulkAction>;
  getBulkAction(id: string): Promise<BulkAction>;
  /** The bulk action now, then each time its progress changes; ends once it is DONE. */
  watchBulkAction(id: string, options?: WaitOptions): AsyncGenerator<BulkAction, void, undefined>;
  /** Resolves to the bulk action once it is DONE. */
  waitBulkAction(id: string, options?: WaitOptions): Promise<BulkAction>;
  /** Resolves to the result once SUCCEEDED; rejects with OperationFailed when it ends FAILED or CANCELLED. */
  result(id: string, options?: WaitOptions): Promise<JsonValue>;
}

/** A client for the daemon at `target` (host:port). */
export function connect(target: string, options?: ClientOptions): Client;

/** The folder the .proto files are loaded from by default. */
export const DEFAULT_PROTO_DIR: string;
export const TERMINAL_STATES: Set<OperationState>;

// -- errors (src/errors.js) ----------------------------------------------------

/** Base of every error the client throws for a failed call (and of OperationFailed). */
export class PausableError extends Error {
  constructor(message: string, code?: number, metadata?: Metadata, options?: { cause?: unknown });
  /** The numeric gRPC status code. */
  code: number;
  /** The status code's name, e.g. "NOT_FOUND". */
  codeName: string;
  /** The server's message (also `message`). */
  details: string;
  metadata: Metadata | undefined;
}

/** One class per gRPC status code; `code` on the class is the status code it stands for. */
export class Cancelled extends PausableError {
  static readonly code: number;
}
export class Unknown extends PausableError {
  static readonly code: number;
}
export class InvalidArgument extends PausableError {
  static readonly code: number;
}
export class DeadlineExceeded extends PausableError {
  static readonly code: number;
}
export class NotFound extends PausableError {
  static readonly code: number;
}
export class AlreadyExists extends PausableError {
  static readonly code: number;
}
export class PermissionDenied extends PausableError {
  static readonly code: number;
}
export class ResourceExhausted extends PausableError {
  static readonly code: number;
}
export class FailedPrecondition extends PausableError {
  static readonly code: number;
}
export class Aborted extends PausableError {
  static readonly code: number;
}
export class OutOfRange extends PausableError {
  static readonly code: number;
}
export class Unimplemented extends PausableError {
  static readonly code: number;
}
export class Internal extends PausableError {
  static readonly code: number;
}
export class Unavailable extends PausableError {
  static readonly code: number;
}
export class DataLoss extends PausableError {
  static readonly code: number;
}
export class Unauthenticated extends PausableError {
  static readonly code: number;
}

/** result() on an operation that ended FAILED or CANCELLED; `operation` is its final state. */
export class OperationFailed extends PausableError {
  constructor(operation: Operation);
  operation: Operation;
}

/** The PausableError subclass for a numeric gRPC status code. */
export function errorClass(code: number): typeof PausableError;
/** A grpc-js ServiceError -> the matching PausableError subclass (other values pass through). */
export function fromServiceError<T>(error: T): PausableError | T;

// -- values (src/values.js, src/json.js) -----------------------------------------

/** JSON text -> value, like JSON.parse but with integers beyond ±(2^53 - 1) as BigInt. */
export function parseJson(text: string): JsonValue;
/** Exact JSON text when non-empty (see parseJson), else the google.protobuf.Value. */
export function jsonField(text: string | undefined | null, value: unknown): JsonValue;
/** The 1-based step number users see from the proto's 0-based current_step. */
export function stepNumber(currentStep: number, totalSteps: number, stepNumber?: number): number;
/** A JSON-shaped value -> google.protobuf.Value as @grpc/proto-loader takes it. */
export function toValue(data: unknown): object;
export function toStruct(object: Record<string, unknown>): object;
export function fromValue(value: unknown): JsonValue;
export function fromStruct(struct: unknown): Record<string, JsonValue>;
export function toDate(timestamp: { seconds: number | string | bigint; nanos?: number } | null | undefined): Date | null;
/** Message converters, as @grpc/proto-loader decodes them (camelCase fields, enums as strings). */
export function toOperation(op: object | null | undefined): Operation | null;
export function toStepRecord(record: object): StepRecord;
export function toEvent(event: object): OperationEvent;
export function toWorkflow(workflow: object): Workflow;
export function toBulkAction(action: object): BulkAction;

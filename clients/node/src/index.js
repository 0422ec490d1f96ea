/**
 * @pausable/client: a promise-based Node.js client for the pausable daemon's
 * OperationService (proto/pausable/v1/operation.proto).
 *
 *   import { connect } from '@pausable/client';
 *   const client = connect('127.0.0.1:50151');
 *   const op = await client.start('demo.etl', { rows: 10, step_seconds: 0.5 });
 *   await client.pause(op.id);
 *   for await (const event of client.watch(op.id)) console.log(event.seq, event.type, event.operation.state);
 *   client.close();
 *
 * Operations, events and workflows come back as plain objects with camelCase
 * fields; `input`/`result` are plain JS values (integers beyond 2^53 - 1 as
 * BigInt), times are Dates, and states and event types are the enum names
 * without their prefix ('PAUSED', 'STEP_COMPLETED'). Failed calls reject
 * with a PausableError subclass (NotFound, InvalidArgument,
 * FailedPrecondition, ...; see errors.js).
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { DataLoss, OperationFailed, fromServiceError } from './errors.js';
import { parseJson } from './json.js';
import { Backoff, TRANSIENT, TRANSIENT_READS } from './retry.js';
import { fromValue, toDate, toValue } from './values.js';

export * from './errors.js';
export { parseJson } from './json.js';
export { fromStruct, fromValue, toDate, toStruct, toValue } from './values.js';

const OPERATION_PROTO = 'pausable/v1/operation.proto';

/**
 * The folder the .proto files are loaded from: the package's own proto/ (copied
 * there from the repository's proto/ by scripts/copy-protos.js on `npm ci`,
 * `npm test` and `npm pack`, and shipped in the package), or, in a checkout
 * where that copy was never made, the repository's proto/ itself.
 */
export const DEFAULT_PROTO_DIR = [new URL('../proto/', import.meta.url), new URL('../../../proto/', import.meta.url)]
  .map((url) => fileURLToPath(url))
  .find((dir) => existsSync(dir + OPERATION_PROTO)) ?? fileURLToPath(new URL('../proto/', import.meta.url));

export const TERMINAL_STATES = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
const TERMINAL_EVENTS = TERMINAL_STATES; // the terminal event types have the same names
const STATE_PREFIX = 'OPERATION_STATE_';
const EVENT_PREFIX = 'EVENT_TYPE_';

const services = new Map();

/** The OperationService constructor for the protos in `protoDir` (loaded once per folder). */
function loadService(protoDir) {
  if (!services.has(protoDir)) {
    if (!existsSync(`${protoDir}/${OPERATION_PROTO}`)) {
      throw new Error(`no ${OPERATION_PROTO} in ${protoDir}: pass protoDir, or in a checkout run \`npm ci\` in clients/node`);
    }
    const definition = protoLoader.loadSync(OPERATION_PROTO, {
      includeDirs: [protoDir], // google/protobuf/{struct,timestamp}.proto are built into protobufjs
      keepCase: false, // operation_id -> operationId
      longs: Number, // int64 seqs as numbers
      enums: String,
      defaults: true,
      oneofs: true, // Value.kind names the field that is set
    });
    services.set(protoDir, grpc.loadPackageDefinition(definition).pausable.v1.OperationService);
  }
  return services.get(protoDir);
}

const unprefix = (name, prefix) => (typeof name === 'string' && name.startsWith(prefix) ? name.slice(prefix.length) : name);

/** 'PAUSED' or 'OPERATION_STATE_PAUSED' (or the enum number) -> what the request message takes. */
function stateEnum(state) {
  return typeof state === 'string' && !state.startsWith(STATE_PREFIX) ? STATE_PREFIX + state.toUpperCase() : state;
}

/**
 * A JSON value the daemon sends twice: as its exact JSON text (`input_json`,
 * `result_json`; integers beyond 2^53 - 1 become BigInt) and as a
 * google.protobuf.Value (numbers as doubles). The text wins when present and
 * non-empty; a daemon without the text fields, or a view that leaves them
 * empty, falls back to the Value.
 */
export function jsonField(text, value) {
  if (typeof text === 'string' && text !== '') {
    try {
      return parseJson(text);
    } catch {
      // not JSON after all: the Value still says it (with numbers as doubles)
    }
  }
  return fromValue(value);
}

/**
 * The 1-based step number users see ("step 3/5", as the CLI prints it): the
 * daemon's `step_number` when it sends one (it counts the user's steps only, not
 * the tasks `tappable` inserts), else, from an older daemon, derived from the
 * proto's 0-based `current_step`: the step running now, or, when paused, the one
 * Resume runs first; `total_steps` once every step has finished (0 without steps).
 */
export function stepNumber(currentStep, totalSteps, number = 0) {
  if (Number(number ?? 0) > 0) return Number(number);
  return Math.min(Number(currentStep ?? 0) + 1, Number(totalSteps ?? 0));
}

function toOperationError(error) {
  if (!error) return null;
  const index = error.step ?? -1; // the proto's 0-based index of the failed step; -1: no step involved
  const step = index >= 0 ? Number(error.stepNumber ?? 0) || index + 1 : null; // the daemon's user numbering when sent
  return {
    code: error.code,
    message: error.message,
    step,
    stepIndex: index,
    stepName: error.stepName,
    traceback: error.traceback || "",
    memberIndex: error.memberIndex ?? null, // a stage's member failed: its 0-based index (proto3 optional: unset -> null)
  };
}

/** The running stage's members (Operation.stage), or null while a plain step runs. */
function toStageProgress(stage) {
  if (!stage) return null;
  return { membersTotal: stage.membersTotal ?? 0, membersDone: stage.membersDone ?? 0, membersRunning: stage.membersRunning ?? 0 };
}

/**
 * A pausable.v1.Operation message (as @grpc/proto-loader decodes it) -> a plain object.
 * `step` is 1-based ("step 3/5"); `currentStep` is the proto's raw 0-based field.
 */
export function toOperation(op) {
  if (!op) return null;
  return {
    id: op.id,
    workflow: op.workflow,
    state: unprefix(op.state, STATE_PREFIX),
    step: stepNumber(op.currentStep, op.totalSteps, op.stepNumber), // 1-based, as users see it: "step 3/5"
    currentStep: op.currentStep, // the proto's current_step: 0-based index in the plan (inserted entries included)
    totalSteps: op.totalSteps,
    currentStepName: op.currentStepName,
    progress: op.progress,
    progressMessage: op.progressMessage,
    stage: toStageProgress(op.stage), // while a stage runs: "stage 2/3 · 37/200 done" (step and totalSteps count stages)
    input: jsonField(op.inputJson, op.input),
    result: jsonField(op.resultJson, op.result),
    error: toOperationError(op.error),
    requester: op.requester,
    labels: { ...op.labels },
    createTime: toDate(op.createTime),
    updateTime: toDate(op.updateTime),
    endTime: toDate(op.endTime),
    lastSeq: Number(op.lastSeq),
    attempt: op.attempt ?? 0,
    leaseExpireTime: toDate(op.leaseExpireTime),
    parentId: op.parentId ?? '', // Fork: the operation this one was forked from ('' when started)
    forkedFromStep: op.forkedFromStep ?? 0, // the 1-based step a fork started at (0 when started)
    pauseBeforeStep: op.pauseBeforeStep ?? 0, // a pending breakpoint (pause(id, { beforeStep })); 0: none
    // The running-time budget given at start (null without one), what is used of it (time PAUSED not counted), and
    // when it runs out if the operation keeps running (null while PAUSED or finished).
    deadlineSeconds: op.deadline ? durationSeconds(op.deadline) : null,
    deadlineUsedSeconds: op.deadline ? durationSeconds(op.deadlineUsed) : null,
    deadlineTime: toDate(op.deadlineTime),
    // While PAUSED with a pause timeout: when the daemon acts, and what it does ('resume' or 'cancel'; '' without one).
    pauseTimeoutTime: toDate(op.pauseTimeoutTime),
    pauseOnTimeout: ON_TIMEOUT_NAMES[op.pauseOnTimeout] ?? '',
  };
}

const ON_TIMEOUT_NAMES = { PAUSE_TIMEOUT_ACTION_RESUME: 'resume', PAUSE_TIMEOUT_ACTION_CANCEL: 'cancel' };
const ON_TIMEOUT_ENUMS = { resume: 'PAUSE_TIMEOUT_ACTION_RESUME', cancel: 'PAUSE_TIMEOUT_ACTION_CANCEL' };

function durationSeconds(duration) {
  return duration ? Number(duration.seconds ?? 0) + (duration.nanos ?? 0) / 1e9 : 0;
}

function toDuration(seconds) {
  const whole = Math.floor(seconds);
  return { seconds: whole, nanos: Math.round((seconds - whole) * 1e9) };
}

/** A pausable.v1.BulkAction message -> a plain object: its progress (matched, done, skipped by reason, failed). */
export function toBulkAction(action) {
  return {
    id: action.id,
    kind: unprefix(action.kind, 'BULK_ACTION_KIND_').toLowerCase(),
    state: unprefix(action.state, 'BULK_ACTION_STATE_'),
    matched: Number(action.matched),
    done: Number(action.done),
    skipped: Number(action.skipped),
    failed: Number(action.failed),
    skippedReasons: Object.fromEntries(action.skippedReasons.map((skip) => [skip.reason, Number(skip.count)])),
    failures: action.failures.map((failure) => ({ operationId: failure.operationId, message: failure.message })),
    reason: action.reason,
    actor: action.actor,
    createTime: toDate(action.createTime),
    endTime: toDate(action.endTime),
  };
}

const STEP_KIND_PREFIX = 'KIND_';

/**
 * A pausable.v1.StepRecord (an entry of GetOperation's step history) -> a plain object: `kind` 'RESULT', 'FAILED'
 * or 'INPUT' (Resume replaced what the step receives: `result` the new value, `previous` the old), `step` 1-based,
 * `durationSeconds` null when the start is not known; `result`/`previous` undefined unless read (`results: true`).
 */
export function toStepRecord(record) {
  const seconds = record.duration ? Number(record.duration.seconds ?? 0) + (record.duration.nanos ?? 0) / 1e9 : null;
  return {
    kind: unprefix(record.kind, STEP_KIND_PREFIX),
    step: record.stepNumber,
    name: record.name,
    attempt: record.attempt,
    startTime: toDate(record.startTime),
    endTime: toDate(record.endTime),
    durationSeconds: seconds,
    resultBytes: Number(record.resultBytes ?? 0),
    planIndex: record.planIndex,
    result: record.resultJson ? parseJson(record.resultJson) : undefined,
    previous: record.previousJson ? parseJson(record.previousJson) : undefined,
  };
}

/** A pausable.v1.OperationEvent message -> a plain object. */
export function toEvent(event) {
  const type = unprefix(event.type, EVENT_PREFIX);
  return {
    operationId: event.operationId,
    seq: Number(event.seq),
    type,
    terminal: TERMINAL_EVENTS.has(type),
    time: toDate(event.time),
    message: event.message,
    actor: event.actor ?? '',
    reason: event.reason ?? '',
    operation: toOperation(event.operation),
  };
}

/** A pausable.v1.Workflow message -> a plain object. */
export function toWorkflow(workflow) {
  return {
    name: workflow.name,
    description: workflow.description,
    steps: [...workflow.steps],
    inputSchema: fromValue(workflow.inputSchema),
    registerTime: toDate(workflow.registerTime),
    planJson: workflow.planJson,
    maxAttempts: workflow.maxAttempts ?? 0,
  };
}

export class Client {
  #stub;
  #metadata;

  /**
   * @param {string} target host:port of the daemon
   * @param {object} [options]
   * @param {grpc.ChannelCredentials} [options.credentials] default: insecure (plaintext); e.g. grpc.credentials.createSsl(ca, key, cert)
   * @param {string} [options.token] bearer token, sent as `authorization: Bearer <token>` on every call;
   *   default: PAUSABLE_TOKEN, else the contents of the file PAUSABLE_TOKEN_FILE names (as the Python SDK)
   * @param {number} [options.retrySeconds=10] how long unary calls retry UNAVAILABLE / RESOURCE_EXHAUSTED (reads: and DEADLINE_EXCEEDED)
   * @param {number} [options.timeoutSeconds=30] deadline of each unary attempt
   * @param {number} [options.reconnectSeconds=60] how long watch() keeps reconnecting without receiving an event
   * @param {object} [options.channelOptions] passed to the grpc-js channel
   * @param {string} [options.protoDir] folder holding pausable/v1/operation.proto
   */
  constructor(target, options = {}) {
    const {
      credentials = grpc.credentials.createInsecure(),
      retrySeconds = 10,
      timeoutSeconds = 30,
      reconnectSeconds = 60,
      channelOptions = {},
      protoDir = DEFAULT_PROTO_DIR,
      token = '',
    } = options;
    const OperationService = loadService(protoDir);
    this.target = target;
    this.retrySeconds = retrySeconds;
    this.timeoutSeconds = timeoutSeconds;
    this.reconnectSeconds = reconnectSeconds;
    this.#stub = new OperationService(target, credentials, channelOptions);
    this.#metadata = new grpc.Metadata();
    const bearer = token || envToken();
    if (bearer) this.#metadata.set('authorization', /^bearer /i.test(bearer) ? bearer : `Bearer ${bearer}`);
  }

  close() {
    this.#stub.close();
  }

  /**
   * One unary call, as the Python SDK makes it: UNAVAILABLE and
   * RESOURCE_EXHAUSTED are retried (DEADLINE_EXCEEDED too when `read`), with
   * jittered exponential backoff, for up to `retrySeconds`; every other status
   * rejects at once with its PausableError subclass. Every call retried is
   * safe to repeat: reads, and mutations that carry a request id.
   */
  async #call(method, request, { read = false } = {}) {
    const retryable = read ? TRANSIENT_READS : TRANSIENT;
    const backoff = new Backoff(this.retrySeconds);
    for (;;) {
      let delay;
      try {
        return await new Promise((resolve, reject) => {
          const options = { deadline: Date.now() + this.timeoutSeconds * 1000 };
          this.#stub[method](request, this.#metadata, options, (error, response) => (error ? reject(error) : resolve(response)));
        });
      } catch (error) {
        delay = retryable.has(error.code) ? backoff.nextDelay() : null;
        if (delay === null) throw fromServiceError(error);
      }
      await sleep(delay * 1000);
    }
  }

  /**
   * Starts `workflow` with `input` (any JSON value); resolves to the new operation. `deadlineSeconds`: a budget of
   * running time (time PAUSED does not count); once used up the operation is cancelled (error DEADLINE_EXCEEDED).
   */
  async start(workflow, input = undefined, { requestId = randomUUID(), requester = '', labels = {}, deadlineSeconds } = {}) {
    const request = { workflow, requestId, requester, labels };
    if (input !== undefined) request.input = toValue(input);
    if (deadlineSeconds !== undefined) request.deadline = toDuration(deadlineSeconds);
    return toOperation((await this.#call('StartOperation', request)).operation);
  }

  async get(id) {
    return toOperation((await this.#call('GetOperation', { operationId: id }, { read: true })).operation);
  }

  /**
   * Newest first; resolves to { operations, nextPageToken, eventsCursor } (nextPageToken '' on the last page;
   * eventsCursor: WatchEvents from it, as after_cursor, follows every change after the page was read). Operations come without input
   * and result unless `full` is true; a page may end early (byte bound) with a nextPageToken.
   */
  async list({ states = [], workflow = '', pageSize = 0, pageToken = '', full = false } = {}) {
    const view = full ? 'OPERATION_VIEW_FULL' : 'OPERATION_VIEW_BASIC';
    const request = { states: states.map(stateEnum), workflow, pageSize, pageToken, view };
    const response = await this.#call('ListOperations', request, { read: true });
    return {
      operations: response.operations.map(toOperation),
      nextPageToken: response.nextPageToken,
      eventsCursor: response.eventsCursor,
    };
  }

  /**
   * Asks the operation to pause at its next step boundary (PAUSE_REQUESTED, then PAUSED); `beforeStep: N` sets a
   * breakpoint instead: it stays RUNNING and pauses when it reaches step N (1-based). With `timeoutSeconds`, once
   * PAUSED that long with nobody resuming it, the daemon resumes it (`onTimeout: 'resume'`) or cancels it (`'cancel'`).
   */
  async pause(id, { requestId = randomUUID(), reason = '', beforeStep = 0, timeoutSeconds, onTimeout } = {}) {
    const request = { operationId: id, requestId, reason, beforeStep };
    if (timeoutSeconds !== undefined) {
      if (!ON_TIMEOUT_ENUMS[onTimeout]) throw new TypeError(`onTimeout must be 'resume' or 'cancel', not ${onTimeout}`);
      request.timeout = toDuration(timeoutSeconds);
      request.onTimeout = ON_TIMEOUT_ENUMS[onTimeout];
    }
    return toOperation((await this.#call('Pause', request)).operation);
  }

  /**
   * Pauses many operations: `ids`, or else every operation matching `states`, `workflow`, `labels`, `requester`
   * (none: every operation). The daemon works through them in the background; resolves at once to the bulk action
   * (see getBulkAction, watchBulkAction). The same `requestId` returns the same bulk action.
   */
  async bulkPause(selection = {}) {
    return this.#bulk('BulkPause', selection);
  }

  /** Resumes many operations; see bulkPause. */
  async bulkResume(selection = {}) {
    return this.#bulk('BulkResume', selection);
  }

  /** Cancels many operations; see bulkPause. */
  async bulkCancel(selection = {}) {
    return this.#bulk('BulkCancel', selection);
  }

  async #bulk(method, { ids, states = [], workflow = '', labels = {}, requester = '', requestId = randomUUID(), reason = '' }) {
    const request = { requestId, reason };
    if (ids) request.operationIds = ids;
    else request.selector = { states: states.map(stateEnum), workflow, labels, requester };
    return toBulkAction((await this.#call(method, request)).bulkAction);
  }

  async getBulkAction(id) {
    return toBulkAction((await this.#call('GetBulkAction', { bulkActionId: id }, { read: true })).bulkAction);
  }

  /** The bulk action now, then each time its progress changes; ends once it is DONE. */
  async *watchBulkAction(id, { signal } = {}) {
    const call = this.#stub.WatchBulkAction({ bulkActionId: id }, this.#metadata);
    call.on('error', () => {});
    const abort = () => call.cancel();
    signal?.addEventListener('abort', abort, { once: true });
    try {
      for await (const response of call) yield toBulkAction(response.bulkAction);
    } catch (caught) {
      signal?.throwIfAborted();
      throw fromServiceError(caught);
    } finally {
      signal?.removeEventListener('abort', abort);
      call.cancel();
    }
  }

  /** Resolves to the bulk action once every operation it matched was processed. */
  async waitBulkAction(id, { signal } = {}) {
    let last = null;
    for await (const action of this.watchBulkAction(id, { signal })) last = action;
    return last ?? this.getBulkAction(id);
  }

  /**
   * Resumes a PAUSED operation, or withdraws a pause that has not taken effect yet. `input` (any JSON value): what
   * the next step receives instead of the stored last result (only when PAUSED; checked against that step's input
   * schema, else InvalidArgument and nothing changes).
   */
  async resume(id, { requestId = randomUUID(), reason = '', input = undefined } = {}) {
    const request = { operationId: id, requestId, reason };
    if (input !== undefined) request.input = toValue(input);
    return toOperation((await this.#call('Resume', request)).operation);
  }

  /** Runs a FAILED or CANCELLED operation again from the step that failed (or was interrupted): the same operation. */
  async retry(id, { requestId = randomUUID(), reason = '' } = {}) {
    return toOperation((await this.#call('Retry', { operationId: id, requestId, reason })).operation);
  }

  /**
   * A new operation of the same workflow starting at the 1-based `fromStep`, fed what that step received in the
   * parent (or `input`); resolves to the new operation (its parentId and forkedFromStep set).
   */
  async fork(id, fromStep, { input = undefined, requestId = randomUUID(), reason = '', labels = {} } = {}) {
    const request = { operationId: id, fromStep, requestId, reason, labels };
    if (input !== undefined) request.input = toValue(input);
    return toOperation((await this.#call('Fork', request)).operation);
  }

  /**
   * The operation with its step history and forks: { operation, steps, forks }, steps oldest first; `results`:
   * each step's result too.
   */
  async history(id, { results = false } = {}) {
    const stepView = results ? 'STEP_VIEW_FULL' : 'STEP_VIEW_BASIC';
    const response = await this.#call('GetOperation', { operationId: id, stepView }, { read: true });
    return { operation: toOperation(response.operation), steps: response.steps.map(toStepRecord), forks: [...response.forks] };
  }

  /**
   * Cancels at once when PAUSED or PENDING, otherwise at the next step boundary; `force: true` cancels a running
   * operation at once and terminates its running step.
   */
  async cancel(id, { requestId = randomUUID(), reason = '', force = false } = {}) {
    return toOperation((await this.#call('Cancel', { operationId: id, requestId, reason, force })).operation);
  }

  /** The workflows the workers have registered. */
  async workflows() {
    return (await this.#call('ListWorkflows', {}, { read: true })).workflows.map(toWorkflow);
  }

  /**
   * Every event after `afterSeq`, each exactly once and in seq order, ending
   * after the terminal one (SUCCEEDED, FAILED or CANCELLED; the newest, when
   * a Retry revived a FAILED or CANCELLED operation), as the Python
   * SDK's watch(): a stream broken with UNAVAILABLE or RESOURCE_EXHAUSTED
   * (daemon restart, dropped connection, load shedding) is reopened with the
   * last seq seen as afterSeq, events sent again are dropped, and a gap in the
   * seqs also reopens it. Reconnecting backs off (50 ms doubling to 1 s,
   * jittered) and gives up after `reconnectSeconds` without a new event,
   * rejecting with the last error (Unavailable, ...); an idle watch on a
   * paused operation may stay open for hours: only the failing time counts.
   * Any other status rejects at once with its PausableError subclass
   * (NotFound, PermissionDenied, ...). Leave the loop early (break) to cancel
   * the stream, or abort `signal`.
   */
  async *watch(id, { afterSeq = 0, signal, reconnectSeconds = this.reconnectSeconds } = {}) {
    let last = Number(afterSeq);
    const backoff = new Backoff(reconnectSeconds);
    for (;;) {
      signal?.throwIfAborted();
      const call = this.#stub.Watch({ operationId: id, afterSeq: last }, this.#metadata);
      call.on('error', () => {}); // the iterator below reports errors; this keeps a late CANCELLED from going unhandled
      const abort = () => call.cancel();
      signal?.addEventListener('abort', abort, { once: true });
      let error = null;
      try {
        for await (const response of call) {
          const event = toEvent(response.event);
          if (event.seq <= last) continue; // already delivered
          if (event.seq !== last + 1) {
            error = new DataLoss(`the Watch stream skipped from seq ${last} to ${event.seq}`);
            break; // reopen from `last`: the daemon replays what we missed from its store
          }
          last = event.seq;
          backoff.reset();
          yield event; // a terminal event may be followed by others (Retry): the daemon ends the stream after the newest
        }
        if (!error) return; // the daemon ended the stream: nothing more will come
      } catch (caught) {
        signal?.throwIfAborted();
        if (!TRANSIENT.has(caught.code)) throw fromServiceError(caught);
        error = caught;
      } finally {
        signal?.removeEventListener('abort', abort);
        call.cancel();
      }
      const delay = backoff.nextDelay();
      if (delay === null) throw fromServiceError(error);
      await sleep(delay * 1000, undefined, { signal });
    }
  }

  /**
   * Follows the operation until it ends (reconnecting as watch() does); resolves
   * to its final state, whatever it is (SUCCEEDED, FAILED or CANCELLED).
   */
  async wait(id, { signal } = {}) {
    let operation = null;
    for (;;) {
      for await (const event of this.watch(id, { afterSeq: operation?.lastSeq ?? 0, signal })) operation = event.operation;
      if (operation && TERMINAL_STATES.has(operation.state)) return operation;
      operation = await this.get(id); // the stream ended before the terminal event: look, and follow on if needed
      if (TERMINAL_STATES.has(operation.state)) return operation;
      await sleep(100, undefined, { signal });
    }
  }

  /**
   * Like the Python SDK's `Operation.wait()`: follows the operation until it
   * ends and resolves to its result when it SUCCEEDED; rejects with
   * OperationFailed (its `operation` holds the final state and `error`) when
   * it ended FAILED or CANCELLED.
   */
  async result(id, { signal } = {}) {
    const operation = await this.wait(id, { signal });
    if (operation.state !== 'SUCCEEDED') throw new OperationFailed(operation);
    return operation.result;
  }
}

/** PAUSABLE_TOKEN, else the file PAUSABLE_TOKEN_FILE names, trimmed ('' without either): the Python SDK's fallback. */
function envToken() {
  const { PAUSABLE_TOKEN: token, PAUSABLE_TOKEN_FILE: file } = process.env;
  if (token) return token;
  return file ? readFileSync(file, 'utf8').trim() : '';
}

/** A client for the daemon at `target` (host:port); see Client for the options. */
export function connect(target, options = {}) {
  return new Client(target, options);
}

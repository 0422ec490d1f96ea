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
 * fields; `input`/`result` are plain JS values, times are Dates, and states and
 * event types are the enum names without their prefix ('PAUSED',
 * 'STEP_COMPLETED'). Failed calls reject with a PausableError subclass
 * (NotFound, InvalidArgument, FailedPrecondition, ...; see errors.js).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { fromServiceError } from './errors.js';
import { fromValue, toDate, toValue } from './values.js';

export * from './errors.js';
export { fromStruct, fromValue, toDate, toStruct, toValue } from './values.js';

/** The repository's proto/ folder; the .proto files are loaded from it at run time. */
export const DEFAULT_PROTO_DIR = fileURLToPath(new URL('../../../proto/', import.meta.url));

export const TERMINAL_STATES = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
const TERMINAL_EVENTS = TERMINAL_STATES; // the terminal event types have the same names
const RETRYABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.RESOURCE_EXHAUSTED]);
const STATE_PREFIX = 'OPERATION_STATE_';
const EVENT_PREFIX = 'EVENT_TYPE_';

const services = new Map();

/** The OperationService constructor for the protos in `protoDir` (loaded once per folder). */
function loadService(protoDir) {
  if (!services.has(protoDir)) {
    const definition = protoLoader.loadSync('pausable/v1/operation.proto', {
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
const backoff = (delay) => delay * (0.5 + Math.random() / 2); // jittered

/** 'PAUSED' or 'OPERATION_STATE_PAUSED' (or the enum number) -> what the request message takes. */
function stateEnum(state) {
  return typeof state === 'string' && !state.startsWith(STATE_PREFIX) ? STATE_PREFIX + state.toUpperCase() : state;
}

/** A pausable.v1.Operation message -> a plain object. */
export function toOperation(op) {
  if (!op) return null;
  return {
    id: op.id,
    workflow: op.workflow,
    state: unprefix(op.state, STATE_PREFIX),
    currentStep: op.currentStep, // 0-based; equals totalSteps once every step has finished
    totalSteps: op.totalSteps,
    currentStepName: op.currentStepName,
    progress: op.progress,
    progressMessage: op.progressMessage,
    input: fromValue(op.input),
    result: fromValue(op.result),
    error: op.error ? { code: op.error.code, message: op.error.message, step: op.error.step, stepName: op.error.stepName } : null,
    requester: op.requester,
    labels: { ...op.labels },
    createTime: toDate(op.createTime),
    updateTime: toDate(op.updateTime),
    endTime: toDate(op.endTime),
    lastSeq: Number(op.lastSeq),
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
    operation: toOperation(event.operation),
  };
}

function toWorkflow(workflow) {
  return {
    name: workflow.name,
    description: workflow.description,
    steps: [...workflow.steps],
    inputSchema: fromValue(workflow.inputSchema),
    registerTime: toDate(workflow.registerTime),
    planJson: workflow.planJson,
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
   * @param {number} [options.retrySeconds=10] how long unary calls retry UNAVAILABLE / RESOURCE_EXHAUSTED
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
   * One unary call; only UNAVAILABLE and RESOURCE_EXHAUSTED are retried, with
   * jittered exponential backoff, for up to `retrySeconds`. Every call retried
   * is safe to repeat: reads, and mutations that carry a request id.
   */
  async #call(method, request) {
    const deadline = Date.now() + this.retrySeconds * 1000;
    let delay = 50;
    for (;;) {
      try {
        return await new Promise((resolve, reject) => {
          const options = { deadline: Date.now() + this.timeoutSeconds * 1000 };
          this.#stub[method](request, this.#metadata, options, (error, response) => (error ? reject(error) : resolve(response)));
        });
      } catch (error) {
        if (!RETRYABLE.has(error.code) || Date.now() + delay > deadline) throw fromServiceError(error);
      }
      await sleep(backoff(delay));
      delay = Math.min(delay * 2, 1000);
    }
  }

  /** Starts `workflow` with `input` (any JSON value); resolves to the new operation. */
  async start(workflow, input = undefined, { requestId = randomUUID(), requester = '', labels = {} } = {}) {
    const request = { workflow, requestId, requester, labels };
    if (input !== undefined) request.input = toValue(input);
    return toOperation((await this.#call('StartOperation', request)).operation);
  }

  async get(id) {
    return toOperation((await this.#call('GetOperation', { operationId: id })).operation);
  }

  /**
   * Newest first; resolves to { operations, nextPageToken } ('' on the last page). Operations come without input
   * and result unless `full` is true; a page may end early (byte bound) with a nextPageToken.
   */
  async list({ states = [], workflow = '', pageSize = 0, pageToken = '', full = false } = {}) {
    const view = full ? 'OPERATION_VIEW_FULL' : 'OPERATION_VIEW_BASIC';
    const response = await this.#call('ListOperations', { states: states.map(stateEnum), workflow, pageSize, pageToken, view });
    return { operations: response.operations.map(toOperation), nextPageToken: response.nextPageToken };
  }

  /** Asks the operation to pause at its next step boundary (PAUSE_REQUESTED, then PAUSED). */
  async pause(id, { requestId = randomUUID() } = {}) {
    return toOperation((await this.#call('Pause', { operationId: id, requestId })).operation);
  }

  /** Resumes a PAUSED operation, or withdraws a pause that has not taken effect yet. */
  async resume(id, { requestId = randomUUID() } = {}) {
    return toOperation((await this.#call('Resume', { operationId: id, requestId })).operation);
  }

  /** Cancels at once when PAUSED or PENDING, otherwise at the next step boundary. */
  async cancel(id, { requestId = randomUUID() } = {}) {
    return toOperation((await this.#call('Cancel', { operationId: id, requestId })).operation);
  }

  /** The workflows the workers have registered. */
  async workflows() {
    return (await this.#call('ListWorkflows', {})).workflows.map(toWorkflow);
  }

  /**
   * Every event after `afterSeq`, each exactly once and in seq order, ending
   * after the terminal one (SUCCEEDED, FAILED or CANCELLED). A stream broken
   * with UNAVAILABLE (daemon restart, network) is reopened from the last seq
   * seen; a gap in the seqs also reopens it. Reconnecting gives up once it
   * has failed for `reconnectSeconds` with no new event (an idle watch on a
   * paused operation may stay open for hours: only the failing time counts).
   * Leave the loop early (break) to cancel the stream, or pass an AbortSignal
   * as `signal`.
   */
  async *watch(id, { afterSeq = 0, signal, reconnectSeconds = this.reconnectSeconds } = {}) {
    let last = Number(afterSeq);
    let failingSince = null; // when reconnecting started failing, since the last event
    let delay = 50;
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
            error = new Error(`the Watch stream skipped from seq ${last} to ${event.seq}`);
            break; // reopen from `last`: the daemon replays what we missed from its store
          }
          last = event.seq;
          failingSince = null;
          delay = 50;
          yield event;
          if (event.terminal) return;
        }
        if (!error) return; // the daemon ended the stream: nothing more will come
      } catch (caught) {
        signal?.throwIfAborted();
        if (!RETRYABLE.has(caught.code)) throw fromServiceError(caught);
        error = caught;
      } finally {
        signal?.removeEventListener('abort', abort);
        call.cancel();
      }
      failingSince ??= Date.now();
      if (Date.now() - failingSince > reconnectSeconds * 1000) throw fromServiceError(error);
      await sleep(backoff(delay), undefined, { signal });
      delay = Math.min(delay * 2, 1000);
    }
  }

  /** Follows the operation until it ends; resolves to its final state (SUCCEEDED, FAILED or CANCELLED). */
  async wait(id, { signal } = {}) {
    let operation = null;
    for await (const event of this.watch(id, { signal })) operation = event.operation;
    return operation ?? this.get(id);
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

/**
 * watch(), wait(), result() and the unary retries against a stand-in
 * OperationService on grpc-js whose every answer a test scripts: broken
 * streams, repeated and missing events, status codes. No daemon needed.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import {
  DEFAULT_PROTO_DIR, DeadlineExceeded, OperationFailed, OutOfRange, PermissionDenied, Unavailable, connect,
} from '../src/index.js';

const definition = protoLoader.loadSync('pausable/v1/operation.proto', {
  includeDirs: [DEFAULT_PROTO_DIR], keepCase: false, longs: String, enums: String, defaults: true, oneofs: true,
});
/** Whether this proto's `message` has the field `name` (camelCase, as the loader spells it). */
const hasField = (message, name) => definition[`pausable.v1.${message}`].type.field.some((field) => field.name === name);

const TYPES = { 1: 'CREATED', 2: 'STARTED', 3: 'STEP_COMPLETED' };
const STATES = { SUCCEEDED: 'SUCCEEDED', FAILED: 'FAILED', CANCELLED: 'CANCELLED' };

/** The WatchResponse with event `seq`; `end` makes it the terminal event of that name. */
function response(id, seq, end = null, operation = {}) {
  return {
    event: {
      operationId: id,
      seq: String(seq),
      type: `EVENT_TYPE_${end ?? TYPES[Math.min(seq, 3)]}`,
      message: `event ${seq}`,
      operation: {
        id, workflow: 'demo.etl', state: `OPERATION_STATE_${end ? STATES[end] : 'RUNNING'}`,
        currentStep: end ? 5 : 1, totalSteps: 5, lastSeq: String(seq), ...operation,
      },
    },
  };
}

const fail = (call, code, details = 'stand-in') => call.emit('error', { code, details });

let server;
let target;
const calls = []; // { method, id, afterSeq, requestId }
const scripts = new Map(); // operation id -> (call, attempt) => void, for Watch
const unary = new Map(); // operation id -> (attempt, request) => [error, response]

const attempts = (method, id) => calls.filter((c) => c.method === method && c.id === id);

before(async () => {
  server = new grpc.Server();
  const answer = (method) => (call, callback) => {
    const id = call.request.operationId ?? call.request.workflow;
    calls.push({ method, id, requestId: call.request.requestId });
    const [error, reply] = unary.get(id)(attempts(method, id).length, call.request);
    callback(error, reply);
  };
  server.addService(grpc.loadPackageDefinition(definition).pausable.v1.OperationService.service, {
    GetOperation: answer('GetOperation'),
    StartOperation: answer('StartOperation'),
    Watch(call) {
      const id = call.request.operationId;
      calls.push({ method: 'Watch', id, afterSeq: Number(call.request.afterSeq) });
      scripts.get(id)(call, attempts('Watch', id).length);
    },
  });
  const port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  target = `127.0.0.1:${port}`;
});

after(() => server?.forceShutdown());

const T = { timeout: 20_000 };
const seqsOf = async (iterable) => {
  const seqs = [];
  for await (const event of iterable) seqs.push(event.seq);
  return seqs;
};

for (const [name, code] of [['UNAVAILABLE', grpc.status.UNAVAILABLE], ['RESOURCE_EXHAUSTED', grpc.status.RESOURCE_EXHAUSTED]]) {
  test(`a Watch broken with ${name} is reopened after the last seq seen; events sent again are dropped`, T, async () => {
    const id = `${name.toLowerCase()}-reconnect`;
    scripts.set(id, (call, attempt) => {
      if (attempt === 1) {
        call.write(response(id, 1));
        call.write(response(id, 2));
        fail(call, code);
      } else {
        call.write(response(id, 2)); // again
        call.write(response(id, 3, 'SUCCEEDED'));
        call.end();
      }
    });
    const client = connect(target);
    try {
      assert.deepEqual(await seqsOf(client.watch(id)), [1, 2, 3]);
      assert.deepEqual(attempts('Watch', id).map((c) => c.afterSeq), [0, 2]);
    } finally {
      client.close();
    }
  });
}

test('a gap in the seqs reopens the stream from the last seq before it', T, async () => {
  const id = 'gap';
  scripts.set(id, (call, attempt) => {
    if (attempt === 1) {
      call.write(response(id, 1));
      call.write(response(id, 3)); // 2 went missing
    } else {
      for (const seq of [2, 3]) call.write(response(id, seq));
      call.write(response(id, 4, 'CANCELLED'));
      call.end();
    }
  });
  const client = connect(target);
  try {
    assert.deepEqual(await seqsOf(client.watch(id)), [1, 2, 3, 4]);
    assert.deepEqual(attempts('Watch', id).map((c) => c.afterSeq), [0, 1]);
  } finally {
    client.close();
  }
});

test('a stream that keeps breaking but brings a new event each time is followed to the end (progress renews the patience)', T, async () => {
  const id = 'flaky';
  scripts.set(id, (call, attempt) => {
    if (attempt < 6) {
      call.write(response(id, attempt));
      setTimeout(() => fail(call, grpc.status.UNAVAILABLE), 150);
    } else {
      call.write(response(id, 6, 'SUCCEEDED'));
      call.end();
    }
  });
  const client = connect(target, { reconnectSeconds: 0.3 }); // less than the 6 x 150 ms the stream spends breaking
  try {
    assert.deepEqual(await seqsOf(client.watch(id)), [1, 2, 3, 4, 5, 6]);
  } finally {
    client.close();
  }
});

test('reconnecting gives up with Unavailable when another wait would overrun reconnectSeconds without a new event', T, async () => {
  const id = 'down';
  scripts.set(id, (call) => fail(call, grpc.status.UNAVAILABLE, 'daemon down'));
  const client = connect(target, { reconnectSeconds: 60 });
  try {
    const started = performance.now();
    const error = await seqsOf(client.watch(id, { reconnectSeconds: 0.5 })).then(() => assert.fail('no error'), (e) => e);
    assert.ok(error instanceof Unavailable, `${error.name}: ${error.message}`);
    assert.equal(error.message, 'daemon down');
    assert.ok(attempts('Watch', id).length >= 3, `${attempts('Watch', id).length} attempts`);
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds >= 0.1 && seconds < 2, `gave up after ${seconds} s of a 0.5 s patience`);
  } finally {
    client.close();
  }
});

test('other statuses reject at once with their class (PERMISSION_DENIED, OUT_OF_RANGE), without reconnecting', T, async () => {
  const client = connect(target);
  try {
    for (const [id, code, Class] of [['denied', grpc.status.PERMISSION_DENIED, PermissionDenied], ['past-end', grpc.status.OUT_OF_RANGE, OutOfRange]]) {
      scripts.set(id, (call) => fail(call, code, `no: ${id}`));
      await assert.rejects(seqsOf(client.watch(id, { afterSeq: 9 })), (error) => error instanceof Class && error.message === `no: ${id}`);
      assert.equal(attempts('Watch', id).length, 1);
    }
  } finally {
    client.close();
  }
});

test('aborting the signal ends an idle watch with an AbortError', T, async () => {
  const id = 'idle';
  scripts.set(id, (call) => call.write(response(id, 1))); // then nothing: a paused operation
  const client = connect(target);
  try {
    const controller = new AbortController();
    const seen = [];
    const watching = (async () => {
      for await (const event of client.watch(id, { signal: controller.signal })) {
        seen.push(event.seq);
        controller.abort();
      }
    })();
    await assert.rejects(watching, { name: 'AbortError' });
    assert.deepEqual(seen, [1]);
  } finally {
    client.close();
  }
});

test('wait() resolves to the final operation; result() to the result, or OperationFailed with the operation', T, async () => {
  const ok = 'ends-ok';
  const bad = 'ends-failed';
  const error = { code: 'StepFailed', message: 'boom', step: 1, stepName: 'demo.etl.t2_transform' };
  scripts.set(ok, (call) => {
    call.write(response(ok, 1));
    call.write(response(ok, 2, 'SUCCEEDED', { result: { numberValue: 42 } }));
    call.end();
  });
  scripts.set(bad, (call) => {
    call.write(response(bad, 1, 'FAILED', { error, currentStep: 1 }));
    call.end();
  });
  const client = connect(target);
  try {
    assert.equal((await client.wait(ok)).state, 'SUCCEEDED');
    assert.equal(await client.result(ok), 42);
    const failed = await client.result(bad).then(() => assert.fail('no error'), (e) => e);
    assert.ok(failed instanceof OperationFailed, failed.name);
    assert.equal(failed.operation.state, 'FAILED');
    assert.deepEqual(failed.operation.error, { code: 'StepFailed', message: 'boom', step: 2, stepIndex: 1, stepName: 'demo.etl.t2_transform', traceback: '', memberIndex: null });
    assert.match(failed.message, /ended FAILED: StepFailed: boom/);
  } finally {
    client.close();
  }
});

test('unary calls: reads retry DEADLINE_EXCEEDED, mutations do not; UNAVAILABLE is retried with the same requestId', T, async () => {
  const operation = { id: 'x', workflow: 'w', state: 'OPERATION_STATE_PENDING', totalSteps: 1 };
  const deadline = { code: grpc.status.DEADLINE_EXCEEDED, details: 'slow' };
  unary.set('slow-read', (attempt) => (attempt < 3 ? [deadline] : [null, { operation }]));
  unary.set('slow-start', () => [deadline]);
  unary.set('flaky-start', (attempt) => (attempt < 3 ? [{ code: grpc.status.UNAVAILABLE, details: 'restarting' }] : [null, { operation }]));
  const client = connect(target, { retrySeconds: 5 });
  try {
    assert.equal((await client.get('slow-read')).state, 'PENDING');
    assert.equal(attempts('GetOperation', 'slow-read').length, 3);

    await assert.rejects(client.start('slow-start', {}), DeadlineExceeded);
    assert.equal(attempts('StartOperation', 'slow-start').length, 1, 'a mutation that ran out of time may have been applied');

    await client.start('flaky-start', {}, { requestId: 'r-1' });
    assert.deepEqual(attempts('StartOperation', 'flaky-start').map((c) => c.requestId), ['r-1', 'r-1', 'r-1']);
  } finally {
    client.close();
  }
});

test('the exact JSON text on the wire (input_json / result_json) reaches the user as BigInt past 2^53 - 1',
  { ...T, skip: hasField('Operation', 'resultJson') ? false : 'this proto has no Operation.result_json yet' }, async () => {
    const id = 'exact';
    const big = 2n ** 53n + 1n;
    scripts.set(id, (call) => {
      call.write(response(id, 1, 'SUCCEEDED', {
        input: { numberValue: Number(big) }, inputJson: `${big}`,
        result: { structValue: { fields: { n: { numberValue: Number(big) } } } }, resultJson: `{"n": ${big}}`,
      }));
      call.end();
    });
    const client = connect(target);
    try {
      const final = await client.wait(id);
      assert.equal(final.input, big);
      assert.deepEqual(final.result, { n: big });
    } finally {
      client.close();
    }
  });

/**
 * Against a real daemon and a real celery worker (`pausable dev`, started once for this file).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { FailedPrecondition, InvalidArgument, NotFound, PausableError, connect } from '../src/index.js';
import { startDev, startProxy } from '../testing/dev.js';

const T = { timeout: 60_000 };
let dev;
let client;

before(async () => {
  dev = await startDev();
  client = dev.client;
}, { timeout: 90_000 });

after(async () => {
  await dev?.stop();
}, { timeout: 60_000 });

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const EXPECTED_RESULT = { summary: { count: 5, total: 220, max: 100, mean: 44 }, steps: ['T1', 'T2', 'T3', 'T4', 'T5'] };

test('workflows() lists demo.etl with its steps and input schema', T, async () => {
  const etl = (await client.workflows()).find((w) => w.name === 'demo.etl');
  assert.equal(etl.steps.length, 5);
  assert.equal(etl.inputSchema.properties.rows.type, 'integer');
  assert.ok(etl.registerTime instanceof Date);
});

test('start runs demo.etl to SUCCEEDED with the expected result', T, async () => {
  const input = { rows: 10, step_seconds: 0.05 };
  const op = await client.start('demo.etl', input, { requestId: `node-${Date.now()}`, requester: 'node-test', labels: { suite: 'node' } });
  assert.match(op.id, /^[0-9a-f]{32}$/);
  assert.deepEqual(op.input, input);
  assert.equal(op.totalSteps, 5);

  const final = await client.wait(op.id);
  assert.equal(final.state, 'SUCCEEDED');
  assert.deepEqual(final.result, EXPECTED_RESULT);
  assert.ok(Number.isInteger(final.result.summary.count));

  const got = await client.get(op.id);
  assert.equal(got.state, 'SUCCEEDED');
  assert.equal(got.currentStep, 5);
  assert.equal(got.step, 5, 'step 5/5 once finished');
  assert.equal(got.requester, 'node-test');
  assert.deepEqual(got.labels, { suite: 'node' });
  assert.ok(got.endTime instanceof Date && got.endTime >= got.createTime);
  assert.deepEqual(got.result, EXPECTED_RESULT);

  const listed = await client.list({ states: ['SUCCEEDED'], workflow: 'demo.etl', pageSize: 1000 });
  assert.ok(listed.operations.some((o) => o.id === op.id));
});

test('large step results (the daemon serializes such replies in parts) read back whole in watch, get and list', T, async () => {
  const rows = 5000; // the extract step's result holds ~24 kB of JSON: over the daemon's offload_json_bytes (8 KiB)
  const op = await client.start('demo.etl', { rows, step_seconds: 0.2 });
  const expected = Array.from({ length: rows }, (_, i) => i + 1);
  let seen = false;
  for await (const event of client.watch(op.id)) {
    if (event.type === 'STEP_COMPLETED' && event.operation.currentStep === 1) {
      assert.deepEqual(event.operation.result.rows, expected);
      const got = await client.get(op.id);
      assert.ok(got.currentStep >= 1);
      if (got.currentStep === 1) assert.deepEqual(got.result.rows, expected);
      const listed = await client.list({ workflow: 'demo.etl', pageSize: 5, full: true });
      const mine = listed.operations.find((o) => o.id === op.id);
      assert.ok(mine && mine.input.rows === rows && mine.result !== null);
      seen = true;
    }
  }
  assert.ok(seen, 'the event of step 1 was seen');
  assert.equal((await client.get(op.id)).state, 'SUCCEEDED');
});

test('the same requestId returns the same operation', T, async () => {
  const requestId = `same-${Date.now()}`;
  const first = await client.start('demo.etl', { rows: 2, step_seconds: 0 }, { requestId });
  const again = await client.start('demo.etl', { rows: 2, step_seconds: 0 }, { requestId });
  assert.equal(again.id, first.id);
  assert.equal((await client.wait(first.id)).state, 'SUCCEEDED');
});

test('pause -> PAUSED -> resume -> SUCCEEDED, the watch seeing seqs 1..lastSeq once each', T, async () => {
  const op = await client.start('demo.etl', { rows: 10, step_seconds: 0.5 });
  const events = [];
  let pauseAsked = false;
  for await (const event of client.watch(op.id)) {
    events.push(event);
    // After the first step's result, not at STARTED: a pause asked before a slow worker took step 1 stops at step 0.
    if (event.type === 'STEP_COMPLETED' && !pauseAsked) {
      pauseAsked = true;
      assert.equal((await client.pause(op.id)).state, 'PAUSE_REQUESTED');
    } else if (event.type === 'PAUSED') {
      const paused = await client.get(op.id);
      assert.equal(paused.state, 'PAUSED');
      assert.ok(paused.currentStep >= 1 && paused.currentStep < 5, `paused at step ${paused.currentStep}`);
      assert.equal(paused.step, paused.currentStep + 1, 'paused: step is the one Resume runs first');
      // While paused, the result is the last finished step's.
      assert.deepEqual(paused.result.log, EXPECTED_RESULT.steps.slice(0, paused.currentStep));
      assert.equal((await client.resume(op.id)).state, 'RUNNING');
    }
  }
  const final = events.at(-1).operation;
  assert.equal(final.state, 'SUCCEEDED');
  assert.deepEqual(final.result, EXPECTED_RESULT);
  assert.deepEqual(events.map((e) => e.seq), range(1, final.lastSeq));
  const types = events.map((e) => e.type);
  // One step numbering everywhere: op.step is the 1-based "step k/5" of the daemon's messages.
  for (const event of events) {
    const { step, currentStep } = event.operation;
    assert.ok(step >= 1 && step <= 5 && step === Math.min(currentStep + 1, 5), `#${event.seq} step ${step}, currentStep ${currentStep}`);
    const done = /^step (\d)\/5 done$/.exec(event.message) ?? /^paused after step (\d)\/5$/.exec(event.message);
    if (done) assert.equal(step, Number(done[1]) + 1, `#${event.seq} ${event.type} "${event.message}" shows step ${step}/5`);
  }
  assert.ok(events.some((e) => e.type === 'STEP_COMPLETED' && e.message.endsWith(' done')), types.join());
  assert.equal(final.step, 5);
  for (const [a, b] of [['PAUSE_REQUESTED', 'PAUSED'], ['PAUSED', 'RESUMED'], ['RESUMED', 'SUCCEEDED']]) {
    assert.ok(types.indexOf(a) !== -1 && types.indexOf(a) < types.indexOf(b), `${a} before ${b} in ${types}`);
  }
  assert.equal(types.filter((t) => t === 'SUCCEEDED').length, 1);
});

test('watch with afterSeq picks up mid-run where an earlier watch stopped', T, async () => {
  const op = await client.start('demo.etl', { rows: 10, step_seconds: 0.3 });
  const seen = [];
  for await (const event of client.watch(op.id)) {
    seen.push(event.seq);
    if (event.type === 'STEP_COMPLETED') break; // leaves the stream mid-run
  }
  const last = seen.at(-1);
  const rest = [];
  let final;
  for await (const event of client.watch(op.id, { afterSeq: last })) {
    rest.push(event.seq);
    final = event.operation;
  }
  assert.equal(final.state, 'SUCCEEDED');
  assert.deepEqual([...seen, ...rest], range(1, final.lastSeq));

  // After the terminal event there is nothing more to see.
  const none = [];
  for await (const event of client.watch(op.id, { afterSeq: final.lastSeq })) none.push(event);
  assert.deepEqual(none, []);
});

test('watch reconnects by itself after the connection drops, without repeating or skipping events', T, async () => {
  const proxy = await startProxy(dev.target);
  const viaProxy = connect(proxy.target);
  try {
    const op = await viaProxy.start('demo.etl', { rows: 10, step_seconds: 0.3 });
    const seqs = [];
    let final;
    for await (const event of viaProxy.watch(op.id)) {
      seqs.push(event.seq);
      final = event.operation;
      if (event.type === 'STEP_COMPLETED' && proxy.connections === 1) proxy.cut();
    }
    assert.ok(proxy.connections >= 2, 'the client reconnected');
    assert.equal(final.state, 'SUCCEEDED');
    assert.deepEqual(seqs, range(1, final.lastSeq));
  } finally {
    viaProxy.close();
    proxy.close();
  }
});

test('cancel ends a running operation CANCELLED', T, async () => {
  const op = await client.start('demo.etl', { rows: 10, step_seconds: 0.5 });
  const asked = await client.cancel(op.id);
  assert.ok(['CANCEL_REQUESTED', 'CANCELLED'].includes(asked.state), asked.state);
  const final = await client.wait(op.id);
  assert.equal(final.state, 'CANCELLED');
  assert.ok(final.currentStep < 5);
});

test('cancel { force: true } ends a running operation CANCELLED at once', T, async () => {
  const op = await client.start('demo.etl', { rows: 10, step_seconds: 2 });
  const cancelled = await client.cancel(op.id, { force: true, reason: 'stuck' });
  assert.equal(cancelled.state, 'CANCELLED');
  assert.equal((await client.wait(op.id)).state, 'CANCELLED');
});

test('pause { beforeStep } is a breakpoint: RUNNING until step N, then PAUSED before it; resume goes on', T, async () => {
  const op = await client.start('demo.etl', { rows: 10, step_seconds: 0.4 });
  const set = await client.pause(op.id, { beforeStep: 4 });
  assert.equal(set.state, 'RUNNING');
  assert.equal(set.pauseBeforeStep, 4);
  for await (const event of client.watch(op.id)) {
    if (event.operation.state === 'PAUSED') {
      assert.equal(event.operation.step, 4, event.message);
      assert.equal(event.operation.pauseBeforeStep, 0, 'the breakpoint took effect');
      break;
    }
  }
  await client.resume(op.id);
  assert.equal((await client.wait(op.id)).state, 'SUCCEEDED');
});

test('pause, resume and cancel take { reason }: the events they append carry it with the actor', T, async () => {
  const op = await client.start('demo.etl', { rows: 10, step_seconds: 0.5 });
  const reasons = {};
  for await (const event of client.watch(op.id)) {
    if (event.reason) reasons[event.type] = [event.actor, event.reason];
    if (event.type === 'STARTED') {
      assert.equal((await client.pause(op.id, { reason: 'db maintenance' })).state, 'PAUSE_REQUESTED');
    } else if (event.type === 'PAUSED') {
      assert.equal((await client.resume(op.id, { reason: 'maintenance over' })).state, 'RUNNING');
    } else if (event.type === 'RESUMED') {
      await client.cancel(op.id, { reason: 'not needed after all' });
    }
  }
  assert.equal((await client.get(op.id)).state, 'CANCELLED');
  const cancel = reasons.CANCEL_REQUESTED ?? reasons.CANCELLED;
  assert.deepEqual(
    [reasons.PAUSE_REQUESTED, reasons.RESUMED, cancel],
    [['anonymous', 'db maintenance'], ['anonymous', 'maintenance over'], ['anonymous', 'not needed after all']],
  );
  const tooLong = await client.pause(op.id, { reason: 'x'.repeat(1001) }).then(() => assert.fail('expected a rejection'), (e) => e);
  assert.ok(tooLong instanceof InvalidArgument, `${tooLong.name}: ${tooLong.message}`);
  assert.match(tooLong.message, /reason is 1001 characters long; keep it to 1000/);
});

test('history lists every step after a run; a fork from step 3 and a retried cancel end with the same result', T, async () => {
  const op = await client.start('demo.etl', { rows: 10, step_seconds: 0.05 });
  const done = await client.wait(op.id);
  const { operation, steps } = await client.history(op.id, { results: true });
  assert.equal(operation.id, op.id);
  assert.deepEqual(steps.map((s) => [s.kind, s.step, s.attempt]), range(1, 5).map((n) => ['RESULT', n, 1]));
  assert.ok(steps.every((s) => s.resultBytes > 0 && s.durationSeconds >= 0 && s.result !== undefined), JSON.stringify(steps));
  assert.deepEqual(steps[4].result, EXPECTED_RESULT);
  assert.equal((await client.history(op.id)).steps[0].result, undefined, 'without results: sizes only');

  const child = await client.fork(op.id, 3, { reason: 'again from 3' });
  assert.deepEqual([child.parentId, child.forkedFromStep, child.step], [op.id, 3, 3]);
  assert.deepEqual((await client.wait(child.id)).result, done.result);
  assert.deepEqual((await client.history(op.id)).forks, [child.id]);

  const slow = await client.start('demo.etl', { rows: 10, step_seconds: 0.3 });
  await client.cancel(slow.id);
  assert.equal((await client.wait(slow.id)).state, 'CANCELLED');
  const retried = await client.retry(slow.id, { reason: 'cancelled by mistake' });
  assert.equal(retried.state, 'RUNNING');
  assert.deepEqual(await client.result(slow.id), EXPECTED_RESULT);
  const types = [];
  for await (const event of client.watch(slow.id)) types.push(event.type);
  assert.deepEqual(types.slice(-1), ['SUCCEEDED']);
  assert.ok(types.indexOf('CANCELLED') < types.indexOf('RETRIED'), types.join(' '));
});

test('errors carry the gRPC code and the server message', T, async () => {
  const check = async (promise, Class, pattern) => {
    const error = await promise.then(() => assert.fail('expected a rejection'), (e) => e);
    assert.ok(error instanceof Class, `${error.name}: ${error.message}`);
    assert.ok(error instanceof PausableError);
    assert.equal(error.code, Class.code);
    assert.match(error.message, pattern);
  };
  await check(client.get('0'.repeat(32)), NotFound, /no operation with id/);
  await check(client.get('not-an-id'), InvalidArgument, /malformed/);
  await check(client.start('no.such.workflow', {}), NotFound, /unknown workflow 'no.such.workflow'/);
  await check(client.start('demo.etl', { rows: 'many' }), InvalidArgument, /schema/);
  await check((async () => { for await (const e of client.watch('f'.repeat(32))) void e; })(), NotFound, /no operation/);

  const op = await client.start('demo.etl', { rows: 1, step_seconds: 0 });
  assert.equal((await client.wait(op.id)).state, 'SUCCEEDED');
  await check(client.resume(op.id), FailedPrecondition, /cannot resume/);
});

test('a deadline, a pause timeout and a bulk action', T, async () => {
  const budgeted = await client.start('demo.etl', { rows: 3, step_seconds: 1 }, { deadlineSeconds: 1.5 });
  assert.equal(budgeted.deadlineSeconds, 1.5);
  const ended = await client.wait(budgeted.id);
  assert.equal(ended.state, 'CANCELLED');
  assert.equal(ended.error.code, 'DEADLINE_EXCEEDED');
  assert.ok(ended.deadlineUsedSeconds >= 1.5 && ended.deadlineTime === null);

  const forgotten = await client.start('demo.etl', { rows: 3, step_seconds: 0.3 });
  const paused = await client.pause(forgotten.id, { timeoutSeconds: 1, onTimeout: 'cancel' });
  assert.equal(paused.pauseOnTimeout, 'cancel');
  await assert.rejects(client.pause(forgotten.id, { timeoutSeconds: 1 }), TypeError);
  const last = await client.wait(forgotten.id);
  assert.equal(last.state, 'CANCELLED');

  const ops = await Promise.all(range(1, 3).map(() => client.start('demo.etl', { rows: 3, step_seconds: 2 })));
  const action = await client.bulkPause({ ids: ops.map((op) => op.id), reason: 'node bulk' });
  assert.equal(action.kind, 'pause');
  assert.equal(action.matched, 3);
  const done = await client.waitBulkAction(action.id);
  assert.deepEqual([done.state, done.done, done.skipped, done.failed], ['DONE', 3, 0, 0]);
  assert.equal((await client.getBulkAction(action.id)).reason, 'node bulk');
  const cancelled = await client.waitBulkAction((await client.bulkCancel({ ids: ops.map((op) => op.id) })).id);
  assert.equal(cancelled.done, 3);
});

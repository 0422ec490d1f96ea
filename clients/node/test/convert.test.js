/**
 * Units without a daemon: the Operation conversion (exact JSON text vs the
 * Value, the 1-based step, a stage), the exact JSON parser and the retry backoff.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import protoLoader from '@grpc/proto-loader';
import { DEFAULT_PROTO_DIR, jsonField, parseJson, stepNumber, toEvent, toOperation, toValue } from '../src/index.js';
import { Backoff } from '../src/retry.js';

const BIG = 2n ** 53n + 1n; // 9007199254740993: no double holds it

/** An Operation as @grpc/proto-loader decodes it (camelCase, enums as names, defaults filled in). */
const message = (fields = {}) => ({
  id: 'a'.repeat(32),
  workflow: 'demo.etl',
  state: 'OPERATION_STATE_RUNNING',
  currentStep: 2,
  totalSteps: 5,
  currentStepName: 'demo.etl.t3_filter',
  progress: 0.25,
  progressMessage: '',
  input: null,
  result: null,
  error: null,
  requester: '',
  labels: {},
  createTime: { seconds: '1', nanos: 0 },
  updateTime: null,
  endTime: null,
  lastSeq: '7',
  attempt: 1,
  leaseExpireTime: null,
  ...fields,
});

test('without input_json/result_json (a daemon before them) input and result come from the Values', () => {
  const op = toOperation(message({ input: toValue({ rows: 10 }), result: toValue({ n: 2 ** 53 }) }));
  assert.deepEqual(op.input, { rows: 10 });
  assert.deepEqual(op.result, { n: 2 ** 53 });
  assert.equal(op.lastSeq, 7);
});

test('input_json/result_json win over the Values when present, keeping 2**53 + 1 exact as a BigInt', () => {
  const op = toOperation(message({
    input: toValue({ n: 9007199254740992 }), // what the Value says: the nearest double
    inputJson: `{"n": ${BIG}}`,
    result: toValue({ total: 9007199254740992, mean: 0.5, rows: [1, 2] }),
    resultJson: `{"total": ${BIG}, "mean": 0.5, "rows": [1, 2], "small": -3}`,
  }));
  assert.deepEqual(op.input, { n: BIG });
  assert.equal(op.result.total, BIG);
  assert.equal(typeof op.result.total, 'bigint');
  assert.equal(op.result.mean, 0.5);
  assert.deepEqual(op.result.rows, [1, 2]);
  assert.equal(op.result.small, -3);
  assert.equal(typeof op.result.small, 'number', 'safe integers stay numbers');
});

test('an empty input_json/result_json (a view without them, or nothing stored) falls back to the Value', () => {
  const op = toOperation(message({ input: toValue([1, 'x']), inputJson: '', result: null, resultJson: '' }));
  assert.deepEqual(op.input, [1, 'x']);
  assert.equal(op.result, null);
  assert.equal(jsonField(undefined, undefined), null);
  assert.equal(jsonField('null', toValue(1)), null, 'the text "null" is a JSON null, not an absent text');
  assert.equal(jsonField('not json', toValue(3)), 3, 'text that is no JSON: the Value');
});

test('events carry the converted operation', () => {
  const event = toEvent({
    operationId: 'a'.repeat(32), seq: '3', type: 'EVENT_TYPE_SUCCEEDED', time: null, message: 'done',
    operation: message({ state: 'OPERATION_STATE_SUCCEEDED', currentStep: 5, resultJson: `[${BIG}]` }),
  });
  assert.equal(event.seq, 3);
  assert.equal(event.type, 'SUCCEEDED');
  assert.equal(event.terminal, true);
  assert.equal(event.actor, '');
  assert.equal(event.reason, '');
  assert.deepEqual(event.operation.result, [BIG]);
});

test('events carry the actor and reason of the command that caused them', () => {
  const event = toEvent({
    operationId: 'a'.repeat(32), seq: '4', type: 'EVENT_TYPE_PAUSE_REQUESTED', time: null, message: '',
    actor: 'ada', reason: 'db maintenance', operation: message({ state: 'OPERATION_STATE_PAUSE_REQUESTED' }),
  });
  assert.equal(event.actor, 'ada');
  assert.equal(event.reason, 'db maintenance');
});

test('step is 1-based as the CLI shows it ("step 3/5"); currentStep stays the proto\'s 0-based field', () => {
  const running = toOperation(message({ currentStep: 2, totalSteps: 5 }));
  assert.equal(running.step, 3);
  assert.equal(running.currentStep, 2);
  assert.equal(toOperation(message({ currentStep: 0, state: 'OPERATION_STATE_PENDING' })).step, 1);
  assert.equal(toOperation(message({ currentStep: 5, state: 'OPERATION_STATE_SUCCEEDED' })).step, 5, 'finished: 5/5');
  assert.equal(stepNumber(0, 0), 0, 'no steps: 0/0, as the CLI');
  assert.equal(stepNumber(4, 5), 5);
});

test('step is the daemon\'s step_number when sent: the user\'s steps, not the tasks tappable inserts', () => {
  // a tappable chain of 3 tasks: plan [a, pause, b, pause, c, finish]; at b (index 2) users see step 2/3
  const tapped = toOperation(message({ currentStep: 2, totalSteps: 3, stepNumber: 2 }));
  assert.equal(tapped.step, 2);
  assert.equal(tapped.currentStep, 2);
  const failed = toOperation(message({ error: { code: 'E', message: 'boom', step: 4, stepName: 'c', stepNumber: 3 } }));
  assert.equal(failed.error.step, 3);
  assert.equal(failed.error.stepIndex, 4);
});

test('the error\'s step is 1-based too (null without a step), its 0-based index kept as stepIndex', () => {
  const failed = toOperation(message({ error: { code: 'StepFailed', message: 'boom', step: 2, stepName: 'demo.etl.t3_filter' } }));
  assert.deepEqual(failed.error, {
    code: 'StepFailed', message: 'boom', step: 3, stepIndex: 2, stepName: 'demo.etl.t3_filter', traceback: '', memberIndex: null,
  });
  const lost = toOperation(message({ error: { code: 'WORKER_LOST', message: 'gone', step: -1, stepName: '' } }));
  assert.equal(lost.error.step, null);
  assert.equal(lost.error.stepIndex, -1);
  assert.equal(toOperation(message()).error, null);
});

test('a running stage is read as stage: { membersTotal, membersDone, membersRunning }; null while a plain step runs', () => {
  const staged = toOperation(message({ currentStep: 1, totalSteps: 3, stepNumber: 2, stage: { membersTotal: 200, membersDone: 37, membersRunning: 8 } }));
  assert.deepEqual(staged.stage, { membersTotal: 200, membersDone: 37, membersRunning: 8 });
  assert.equal(staged.step, 2, 'a stage is one step');
  assert.equal(toOperation(message()).stage, null);
  assert.equal(toOperation(message({ stage: null })).stage, null);
});

test('through the wire: stage and the error\'s memberIndex as the proto has them (an unset memberIndex is null, 0 stays 0)', () => {
  const definition = protoLoader.loadSync('pausable/v1/operation.proto', {
    includeDirs: [DEFAULT_PROTO_DIR], keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true,
  });
  const { responseSerialize, responseDeserialize } = definition['pausable.v1.OperationService'].GetOperation;
  const roundTrip = (operation) => toOperation(responseDeserialize(responseSerialize({ operation })).operation);
  const failed = roundTrip({
    id: 'a'.repeat(32), state: 'OPERATION_STATE_FAILED', currentStep: 1, totalSteps: 3, stepNumber: 2,
    stage: { membersTotal: 4, membersDone: 3, membersRunning: 0 },
    error: { code: 'ValueError', message: 'bad row', step: 1, stepNumber: 2, stepName: 'process_file', memberIndex: 0 },
  });
  assert.deepEqual(failed.stage, { membersTotal: 4, membersDone: 3, membersRunning: 0 });
  assert.equal(failed.error.memberIndex, 0);
  const plain = roundTrip({ id: 'b'.repeat(32), error: { code: 'E', message: 'boom', step: 0 } });
  assert.equal(plain.error.memberIndex, null);
  assert.equal(plain.stage, null);
});

test('index.d.ts names every state and event type of the proto', () => {
  const proto = readFileSync(path.join(DEFAULT_PROTO_DIR, 'pausable/v1/operation.proto'), 'utf8');
  const types = readFileSync(fileURLToPath(new URL('../index.d.ts', import.meta.url)), 'utf8');
  const union = (name) => new Set([...new RegExp(`export type ${name} =([^;]*);`).exec(types)[1].matchAll(/'(\w+)'/g)].map((m) => m[1]));
  const values = (prefix) => new Set([...proto.matchAll(new RegExp(`^\\s*${prefix}(\\w+) = \\d+;`, 'gm'))].map((m) => m[1]));
  assert.deepEqual(union('EventType'), values('EVENT_TYPE_'));
  assert.deepEqual(union('OperationState'), values('OPERATION_STATE_'));
});

test('parseJson: BigInt only for integers beyond ±(2^53 - 1), the rest as JSON.parse gives it', () => {
  assert.equal(parseJson(String(BIG)), BIG);
  assert.equal(parseJson(String(-BIG)), -BIG);
  assert.equal(parseJson('9007199254740991'), Number.MAX_SAFE_INTEGER);
  assert.equal(parseJson('-9007199254740991'), Number.MIN_SAFE_INTEGER);
  assert.equal(parseJson('18446744073709551616'), 2n ** 64n);
  assert.equal(parseJson('12345678901234567.5'), 12345678901234567.5, 'a fraction: a number');
  assert.equal(parseJson('1e400'), Infinity, 'as JSON.parse');
  const text = '{"s": "12345678901234567890", "a": [true, false, null, {}], "u": "\\u00e9\\n", "n": 12345678901234567890}';
  assert.deepEqual(parseJson(text), { s: '12345678901234567890', a: [true, false, null, {}], u: 'é\n', n: 12345678901234567890n });
  const proto = parseJson('{"__proto__": 12345678901234567890}');
  assert.equal(Object.getPrototypeOf(proto), Object.prototype, 'an own "__proto__" key, as JSON.parse makes it');
  assert.equal(Object.getOwnPropertyDescriptor(proto, '__proto__').value, 12345678901234567890n);
  for (const bad of ['[12345678901234567890,]', '{"a" 12345678901234567890}', '12345678901234567890 1', '[012345678901234567]', '']) {
    assert.throws(() => parseJson(bad), SyntaxError, bad);
  }
});

test('parseJson agrees with JSON.parse on JSON without unsafe integers', () => {
  const data = { rows: [1, 2.5, -0.125, 1e21], text: 'a "quoted" \\ text \u2028 \ud83d\ude00', nested: [[[]], {}], ok: true, none: null };
  const text = JSON.stringify(data, null, 2);
  assert.deepEqual(parseJson(text), JSON.parse(text));
  // The exact parser too (forced by a long run of digits inside a string):
  const forced = JSON.stringify({ ...data, id: '1234567890123456789' });
  assert.deepEqual(parseJson(forced), JSON.parse(forced));
});

test('Backoff: jittered delays doubling to the cap within the patience, counted from the first delay; reset() renews it', () => {
  let now = 100;
  const backoff = new Backoff(5, { clock: () => now, random: () => 1 });
  const delays = [];
  for (let delay = backoff.nextDelay(); delay !== null; delay = backoff.nextDelay()) {
    delays.push(delay);
    now += delay;
  }
  assert.deepEqual(delays, [0.05, 0.1, 0.2, 0.4, 0.8, 1, 1, 1]); // 4.55 s; one more second would overrun the 5
  assert.ok(now <= 105, `waited ${now - 100} s of a 5 s patience`);
  backoff.reset();
  assert.equal(backoff.nextDelay(), 0.05, 'a fresh patience after progress');

  const jittered = new Backoff(null, { random: () => 0 });
  assert.equal(jittered.nextDelay(), 0.025, 'half the delay at the lowest jitter');
  for (let i = 0; i < 100; i += 1) assert.notEqual(jittered.nextDelay(), null, 'no patience: never gives up');
});

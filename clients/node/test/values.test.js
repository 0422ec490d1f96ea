import assert from 'node:assert/strict';
import test from 'node:test';
import { fromValue, toDate, toValue } from '../src/index.js';

test('toValue/fromValue round-trip JSON-shaped data, integers staying integers', () => {
  const data = { rows: 10, ratio: 0.5, name: 'etl', ok: true, none: null, list: [1, 'two', [3], { four: 4 }], empty: {} };
  const value = toValue(data);
  assert.deepEqual(value.structValue.fields.rows, { numberValue: 10 });
  assert.deepEqual(value.structValue.fields.none, { nullValue: 'NULL_VALUE' });
  const back = fromValue(value);
  assert.deepEqual(back, data);
  assert.ok(Number.isInteger(back.rows));
});

test('toValue follows JSON: undefined fields are dropped, Dates become strings, non-finite numbers are refused', () => {
  assert.deepEqual(fromValue(toValue({ a: undefined, b: 1 })), { b: 1 });
  assert.equal(fromValue(toValue(new Date(0))), '1970-01-01T00:00:00.000Z');
  assert.throws(() => toValue(NaN), TypeError);
  assert.throws(() => toValue(() => 1), TypeError);
});

test('fromValue reads proto-loader objects with or without the oneof name, and null for unset', () => {
  assert.equal(fromValue(null), null);
  assert.equal(fromValue({ kind: 'numberValue', numberValue: 3 }), 3);
  assert.deepEqual(fromValue({ listValue: { values: [{ stringValue: 'x' }] } }), ['x']);
  assert.deepEqual(toDate({ seconds: 1, nanos: 500_000_000 }), new Date(1500));
  assert.equal(toDate(null), null);
});

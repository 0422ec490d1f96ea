/**
 * The error classes (one per gRPC status code, as the Python SDK's) and how
 * testing/dev.js finds the `pausable` command. No daemon needed.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import grpc from '@grpc/grpc-js';
import * as client from '../src/index.js';
import { findCli } from '../testing/dev.js';

const { OperationFailed, PausableError, errorClass, fromServiceError } = client;

test('every gRPC status but OK has its PausableError subclass, named like the Python SDK\'s', () => {
  const expected = {
    CANCELLED: 'Cancelled', UNKNOWN: 'Unknown', INVALID_ARGUMENT: 'InvalidArgument', DEADLINE_EXCEEDED: 'DeadlineExceeded',
    NOT_FOUND: 'NotFound', ALREADY_EXISTS: 'AlreadyExists', PERMISSION_DENIED: 'PermissionDenied',
    RESOURCE_EXHAUSTED: 'ResourceExhausted', FAILED_PRECONDITION: 'FailedPrecondition', ABORTED: 'Aborted',
    OUT_OF_RANGE: 'OutOfRange', UNIMPLEMENTED: 'Unimplemented', INTERNAL: 'Internal', UNAVAILABLE: 'Unavailable',
    DATA_LOSS: 'DataLoss', UNAUTHENTICATED: 'Unauthenticated',
  };
  for (const [codeName, name] of Object.entries(expected)) {
    const code = grpc.status[codeName];
    const Class = client[name];
    assert.equal(errorClass(code), Class, codeName);
    assert.equal(Class.code, code);
    const metadata = new grpc.Metadata();
    const raw = Object.assign(new Error(`${code} ${codeName}: from the server`), { code, details: 'from the server', metadata });
    const error = fromServiceError(raw);
    assert.ok(error instanceof Class && error instanceof PausableError && error instanceof Error);
    assert.equal(error.name, name);
    assert.equal(error.code, code);
    assert.equal(error.codeName, codeName);
    assert.equal(error.message, 'from the server');
    assert.equal(error.details, 'from the server');
    assert.equal(error.metadata, metadata);
    assert.equal(error.cause, raw, 'the grpc-js error stays at hand');
  }
  assert.equal(errorClass(grpc.status.OK), PausableError);
  assert.equal(errorClass(99), PausableError);
});

test('fromServiceError: no details -> the code name; non-gRPC errors and PausableErrors pass through', () => {
  assert.equal(fromServiceError({ code: grpc.status.INTERNAL, details: '' }).message, 'INTERNAL');
  const plain = new TypeError('not grpc');
  assert.equal(fromServiceError(plain), plain);
  const typed = new client.NotFound('x');
  assert.equal(fromServiceError(typed), typed);
  assert.equal(typed.code, grpc.status.NOT_FOUND, 'the class gives the code');
});

test('OperationFailed names the operation, its state and its error', () => {
  const operation = { id: 'abc', state: 'FAILED', error: { code: 'StepFailed', message: 'boom', step: 2 } };
  const error = new OperationFailed(operation);
  assert.ok(error instanceof PausableError);
  assert.equal(error.message, 'operation abc ended FAILED: StepFailed: boom');
  assert.equal(error.operation, operation);
  assert.equal(error.codeName, 'UNKNOWN', 'as in Python: no call failed');
  assert.equal(new OperationFailed({ id: 'abc', state: 'CANCELLED', error: null }).message, 'operation abc ended CANCELLED');
});

test('findCli: $PAUSABLE_CLI, else the first executable pausable on PATH, else an error that says what to do', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pausable-findcli-'));
  try {
    const [empty, notExecutable, good, alsoGood] = ['empty', 'plain', 'good', 'also'].map((name) => path.join(dir, name));
    for (const folder of [empty, notExecutable, good, alsoGood]) mkdirSync(folder);
    mkdirSync(path.join(empty, 'pausable')); // a folder by that name is no command
    writeFileSync(path.join(notExecutable, 'pausable'), '#!/bin/sh\n');
    for (const folder of [good, alsoGood]) {
      writeFileSync(path.join(folder, 'pausable'), '#!/bin/sh\n');
      chmodSync(path.join(folder, 'pausable'), 0o755);
    }
    const PATH = [empty, notExecutable, good, alsoGood].join(path.delimiter);
    assert.equal(findCli({ PATH }), path.join(good, 'pausable'));
    assert.equal(findCli({ PATH, PAUSABLE_CLI: path.join(alsoGood, 'pausable') }), path.join(alsoGood, 'pausable'));
    assert.throws(() => findCli({ PATH, PAUSABLE_CLI: path.join(notExecutable, 'pausable') }), /PAUSABLE_CLI=.* is not an executable file/);
    assert.throws(() => findCli({ PATH: [empty, notExecutable].join(path.delimiter) }), /no pausable command on PATH.*PAUSABLE_CLI/s);
    assert.throws(() => findCli({}), /no pausable command on PATH/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

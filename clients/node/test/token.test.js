/**
 * The `token` option: every call (unary and Watch) carries `authorization: Bearer <token>`.
 * Against a stand-in OperationService on grpc-js, so no daemon is needed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { DEFAULT_PROTO_DIR, connect } from '../src/index.js';

let server;
let port;
const seen = [];

before(async () => {
  const definition = protoLoader.loadSync('pausable/v1/operation.proto', {
    includeDirs: [DEFAULT_PROTO_DIR],
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const service = grpc.loadPackageDefinition(definition).pausable.v1.OperationService.service;
  server = new grpc.Server();
  server.addService(service, {
    ListWorkflows(call, callback) {
      seen.push(call.metadata.get('authorization')[0]);
      callback(null, { workflows: [] });
    },
    Watch(call) {
      seen.push(call.metadata.get('authorization')[0]);
      call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'stand-in' });
    },
  });
  port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
});

after(() => server?.forceShutdown());

test('token is sent as a bearer token on unary calls and on Watch', { timeout: 20_000 }, async () => {
  const client = connect(`127.0.0.1:${port}`, { token: 'abc.def.ghi' });
  assert.deepEqual(await client.workflows(), []);
  await assert.rejects(async () => {
    for await (const _ of client.watch('0'.repeat(32))) break;
  });
  client.close();
  assert.deepEqual(seen, ['Bearer abc.def.ghi', 'Bearer abc.def.ghi']);
});

test('no token: no authorization metadata', { timeout: 20_000 }, async () => {
  seen.length = 0;
  const client = connect(`127.0.0.1:${port}`);
  await client.workflows();
  client.close();
  assert.deepEqual(seen, [undefined]);
});

test('without a token option: PAUSABLE_TOKEN, else PAUSABLE_TOKEN_FILE; the option wins', { timeout: 20_000 }, async () => {
  const saved = { token: process.env.PAUSABLE_TOKEN, file: process.env.PAUSABLE_TOKEN_FILE };
  const dir = mkdtempSync(join(tmpdir(), 'pausable-token-'));
  const file = join(dir, 't.jwt');
  writeFileSync(file, 'from.the.file\n');
  try {
    seen.length = 0;
    for (const [env, options] of [
      [{ PAUSABLE_TOKEN: 'from.the.env', PAUSABLE_TOKEN_FILE: file }, {}],
      [{ PAUSABLE_TOKEN_FILE: file }, {}],
      [{ PAUSABLE_TOKEN: 'from.the.env' }, { token: 'given' }],
    ]) {
      delete process.env.PAUSABLE_TOKEN;
      delete process.env.PAUSABLE_TOKEN_FILE;
      Object.assign(process.env, env);
      const client = connect(`127.0.0.1:${port}`, options);
      await client.workflows();
      client.close();
    }
    assert.deepEqual(seen, ['Bearer from.the.env', 'Bearer from.the.file', 'Bearer given']);
  } finally {
    for (const [name, value] of [['PAUSABLE_TOKEN', saved.token], ['PAUSABLE_TOKEN_FILE', saved.file]]) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

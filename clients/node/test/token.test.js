/**
 * The `token` option: every call (unary and Watch) carries `authorization: Bearer <token>`.
 * Against a stand-in OperationService on grpc-js, so no daemon is needed.
 */
import assert from 'node:assert/strict';
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

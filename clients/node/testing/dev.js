/**
 * Test fixtures: a real `pausable dev` (redis + daemon + one celery worker) on a
 * free port, and a TCP proxy whose connections a test can cut.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from '../src/index.js';

/** A free loopback port: listen on port 0, read the port, close. */
export async function freePort() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

const isExecutableFile = (file) => {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
};

/**
 * The `pausable` command the tests start: $PAUSABLE_CLI when set (a path to
 * it), else the first executable `pausable` on $PATH; nothing else, so the
 * tests never pick up some other installation by accident. Throws an error
 * that says what to do when there is none.
 */
export function findCli(env = process.env) {
  const chosen = env.PAUSABLE_CLI;
  if (chosen) {
    if (isExecutableFile(chosen)) return chosen;
    throw new Error(`PAUSABLE_CLI=${chosen} is not an executable file: point it at the pausable command (e.g. .venv/bin/pausable)`);
  }
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (dir && isExecutableFile(path.join(dir, 'pausable'))) return path.join(dir, 'pausable');
  }
  throw new Error(
    'no pausable command on PATH: install pausable (from the repository root: python3 -m venv .venv && '
      + ".venv/bin/pip install -e '.[dev]') and put its bin folder on PATH (e.g. PATH=\"$PWD/../../.venv/bin:$PATH\" npm test), "
      + 'or set PAUSABLE_CLI to the command\'s path; scripts/test in the repository root does all of this',
  );
}

/**
 * Starts `pausable dev` and resolves once its worker has registered demo.etl.
 * Returns { target, client, stop() }.
 */
export async function startDev({ timeoutMs = 60_000 } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pausable-node-'));
  const target = `127.0.0.1:${await freePort()}`;
  const args = ['--daemon', target, 'dev', '--data-dir', path.join(dir, 'data'),
    '--database-url', `sqlite+aiosqlite:///${path.join(dir, 'p.db')}`, '--http-port', '0'];
  // Its own process group, so that a last-resort SIGKILL also reaches redis, the daemon and the worker.
  const child = spawn(findCli(), args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (chunk) => { output += chunk; });
  child.stderr.on('data', (chunk) => { output += chunk; });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const killGroup = () => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ } };
  process.once('exit', killGroup);

  const stop = async (graceMs = 30_000) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT'); // `pausable dev` stops its worker, daemon and redis on Ctrl-C
      const timer = setTimeout(killGroup, graceMs);
      await exited;
      clearTimeout(timer);
    }
    client.close();
    process.removeListener('exit', killGroup);
    rmSync(dir, { recursive: true, force: true });
  };

  const client = connect(target, { retrySeconds: 2, timeoutSeconds: 10 });
  const deadline = Date.now() + timeoutMs;
  const ready = (async () => {
    for (;;) {
      try {
        if ((await client.workflows()).some((w) => w.name === 'demo.etl')) return;
      } catch { /* not serving yet */ }
      if (Date.now() > deadline || child.exitCode !== null) return;
      await sleep(100); // poll interval
    }
  })();
  const outcome = await Promise.race([ready.then(() => 'ready'), exited.then(() => 'exited')]);
  if (outcome !== 'ready' || Date.now() > deadline) {
    await stop(5_000);
    throw new Error(`pausable dev did not register demo.etl within ${timeoutMs} ms (${outcome}); its output:\n${output}`);
  }
  return { target, client, stop };
}

/** A TCP proxy to `target`; cut() drops every open connection, new ones still go through. */
export async function startProxy(target) {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const sockets = new Set();
  let connections = 0;
  const server = net.createServer((downstream) => {
    connections += 1;
    const upstream = net.connect(port, host);
    for (const [a, b] of [[downstream, upstream], [upstream, downstream]]) {
      sockets.add(a);
      a.pipe(b);
      a.on('error', () => b.destroy());
      a.on('close', () => { sockets.delete(a); b.destroy(); });
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    target: `127.0.0.1:${server.address().port}`,
    get connections() { return connections; },
    cut() { for (const socket of sockets) socket.destroy(); },
    close() { this.cut(); server.close(); },
  };
}

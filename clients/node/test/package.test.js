/**
 * The package as a user gets it: `npm pack`'s tarball installed into a scratch
 * project in a temporary folder, running the README's snippet and
 * examples/demo.js from there against a real daemon (`pausable dev`); this
 * folder installed as a link; the .proto files and the types it ships.
 *
 * Offline: the scratch project gets a lockfile made from this folder's
 * package-lock.json, so `npm ci --offline` takes the registry dependencies
 * from npm's cache, which `npm ci` here filled.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SOURCE, protoFiles } from '../scripts/copy-protos.js';
import { startDev } from '../testing/dev.js';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const manifest = JSON.parse(readFileSync(path.join(PACKAGE_DIR, 'package.json'), 'utf8'));
const T = { timeout: 180_000 };

/**
 * The environment for a child npm: without the npm_* variables `npm test` sets
 * (npm_config_local_prefix would make it work on this folder), but with the
 * cache and config files this run uses.
 */
function npmEnv() {
  const keep = new Set(['npm_config_cache', 'npm_config_userconfig', 'npm_config_globalconfig']);
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith('npm_') || keep.has(key)));
}

async function run(command, args, { cwd, timeout = 120_000 } = {}) {
  try {
    return await promisify(execFile)(command, args, { cwd, timeout, env: npmEnv(), maxBuffer: 16 << 20 });
  } catch (error) {
    throw new Error(`${command} ${args.join(' ')} (in ${cwd}) failed: ${error.message}\n--- stdout\n${error.stdout}\n--- stderr\n${error.stderr}`);
  }
}

let dev;
let tmp;
let packed; // npm pack --json's entry for the tarball
let tarball;

before(async () => {
  tmp = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'pausable-node-pack-')));
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', tmp], { cwd: PACKAGE_DIR });
  [packed] = JSON.parse(stdout);
  tarball = path.join(tmp, packed.filename);
  dev = await startDev();
}, { timeout: 180_000 });

after(async () => {
  await dev?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}, { timeout: 60_000 });

/** A scratch project in `dir` depending on the tarball only, with a lockfile pinning the registry dependencies. */
function scratchProject(dir) {
  mkdirSync(dir, { recursive: true });
  const spec = `file:${packed.filename}`;
  copyFileSync(tarball, path.join(dir, packed.filename));
  const lock = JSON.parse(readFileSync(path.join(PACKAGE_DIR, 'package-lock.json'), 'utf8'));
  const root = lock.packages[''];
  const packages = {
    '': { name: 'scratch', dependencies: { [manifest.name]: spec } },
    [`node_modules/${manifest.name}`]: {
      version: manifest.version, resolved: spec, integrity: packed.integrity, license: manifest.license,
      dependencies: root.dependencies, engines: root.engines,
    },
  };
  for (const [key, entry] of Object.entries(lock.packages)) {
    if (key && !entry.dev) packages[key] = entry; // the client's own dependencies, as pinned here
  }
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module', dependencies: { [manifest.name]: spec } }, null, 2));
  writeFileSync(path.join(dir, 'package-lock.json'), JSON.stringify({ name: 'scratch', lockfileVersion: 3, requires: true, packages }, null, 2));
}

/** The first ```js block of README.md's "## Use" section. */
function readmeSnippet() {
  const readme = readFileSync(path.join(PACKAGE_DIR, 'README.md'), 'utf8');
  const use = readme.slice(readme.indexOf('\n## Use\n'));
  const match = /```js\n([\s\S]*?)```/.exec(use);
  assert.ok(match, 'README.md has a js block under "## Use"');
  return match[1];
}

test('npm pack ships src/, the .proto files, index.d.ts and the README, nothing else', T, () => {
  const files = packed.files.map((file) => file.path).sort();
  const protos = protoFiles(SOURCE).map((name) => `proto/pausable/v1/${name}`);
  for (const required of ['package.json', 'README.md', 'index.d.ts', 'src/index.js', 'src/errors.js', ...protos]) {
    assert.ok(files.includes(required), `${required} in ${files}`);
  }
  const allowed = (file) => ['package.json', 'README.md', 'index.d.ts'].includes(file) || /^(src|proto)\//.test(file);
  assert.deepEqual(files.filter((file) => !allowed(file)), []);
  assert.ok(protos.includes('proto/pausable/v1/operation.proto'));
});

test('the package\'s .proto files are the repository\'s proto/ (one source: scripts/copy-protos.js)', T, () => {
  const copied = path.join(PACKAGE_DIR, 'proto/pausable/v1');
  assert.deepEqual(protoFiles(copied), protoFiles(SOURCE));
  for (const name of protoFiles(SOURCE)) {
    assert.equal(readFileSync(path.join(copied, name), 'utf8'), readFileSync(path.join(SOURCE, name), 'utf8'),
      `clients/node/proto/pausable/v1/${name} differs from proto/pausable/v1/${name}: run npm run prepare`);
  }
});

test('the tarball installs into a fresh project offline; the README snippet and examples/demo.js run from there', T, async () => {
  const project = path.join(tmp, 'from-tarball');
  scratchProject(project);
  await run('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: project });

  // Resolved from the project's node_modules, with its own protos, not from this checkout.
  writeFileSync(path.join(project, 'where.js'), "import { DEFAULT_PROTO_DIR } from '@pausable/client';\nconsole.log(DEFAULT_PROTO_DIR);\n");
  const where = (await run(process.execPath, ['where.js'], { cwd: project })).stdout.trim();
  assert.equal(where, path.join(project, 'node_modules/@pausable/client/proto/'));

  const snippet = readmeSnippet();
  assert.match(snippet, /from '@pausable\/client'/);
  writeFileSync(path.join(project, 'readme.js'), snippet.replaceAll('127.0.0.1:50151', dev.target));
  const readme = (await run(process.execPath, ['readme.js'], { cwd: project })).stdout;
  assert.match(readme, / PAUSED PAUSED step [1-5]\/5 /);
  assert.match(readme, / SUCCEEDED SUCCEEDED step 5\/5 /);
  assert.match(readme, /^SUCCEEDED \{/m);

  copyFileSync(path.join(PACKAGE_DIR, 'examples/demo.js'), path.join(project, 'demo.js'));
  const demo = (await run(process.execPath, ['demo.js', dev.target], { cwd: project })).stdout;
  assert.match(demo, /-> resume asked; now RUNNING/);
  assert.match(demo, /operation [0-9a-f]{32} SUCCEEDED/);
  const result = JSON.parse(/^result: (.*)$/m.exec(demo)?.[1] ?? 'null');
  assert.deepEqual(result, { summary: { count: 5, total: 220, max: 100, mean: 44 }, steps: ['T1', 'T2', 'T3', 'T4', 'T5'] });
});

test('npm install <this folder> (a link) works too', T, async () => {
  const project = path.join(tmp, 'from-folder');
  mkdirSync(project);
  writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'scratch-link', private: true, type: 'module' }));
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', PACKAGE_DIR], { cwd: project });
  writeFileSync(path.join(project, 'check.js'), [
    "import { connect } from '@pausable/client';",
    `const client = connect(${JSON.stringify(dev.target)});`,
    "console.log((await client.workflows()).map((w) => w.name).join(','));",
    'client.close();',
  ].join('\n'));
  assert.match((await run(process.execPath, ['check.js'], { cwd: project })).stdout, /demo\.etl/);
});

test('index.d.ts declares exactly what src/index.js exports', T, async () => {
  const runtime = Object.keys(await import('../src/index.js')).sort();
  const types = readFileSync(path.join(PACKAGE_DIR, 'index.d.ts'), 'utf8');
  const declared = [...types.matchAll(/^export (?:declare )?(?:class|function|const|let) (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual([...new Set(declared)].sort(), runtime);
  assert.equal(manifest.types, './index.d.ts');
  assert.equal(manifest.exports['.'].types, './index.d.ts');
});

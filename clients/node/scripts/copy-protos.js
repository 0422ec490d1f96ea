#!/usr/bin/env node
/**
 * Copies the .proto files the client loads from the repository's proto/ folder
 * (the single source of truth) into this package's proto/ folder, which is
 * git-ignored and shipped in the package (package.json `files`).
 *
 * Run by npm as `prepare` (on `npm ci` / `npm install` in this folder, on
 * `npm pack` and `npm publish`) and as `pretest`. Outside the repository (an
 * installed copy, where proto/ already came with the package) it does nothing.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE = path.resolve(here, '../../../proto/pausable/v1');
export const TARGET = path.resolve(here, '../proto/pausable/v1');

/** The .proto file names in `dir` (sorted). */
export const protoFiles = (dir) => readdirSync(dir).filter((name) => name.endsWith('.proto')).sort();

/**
 * Makes `target` hold exactly the .proto files of `source`. Only files that
 * differ are written, each to a temporary name and renamed into place, so a
 * test loading the protos while `npm pack` runs this again never sees a
 * missing or half-written file. Returns the names written or removed.
 */
export function copyProtos({ source = SOURCE, target = TARGET } = {}) {
  if (!existsSync(source)) {
    if (existsSync(target)) return []; // an installed copy: its protos came with it
    throw new Error(`no ${source}: run this from a checkout of the pausable repository`);
  }
  mkdirSync(target, { recursive: true });
  const names = protoFiles(source);
  const changed = [];
  for (const name of names) {
    const from = path.join(source, name);
    const to = path.join(target, name);
    if (existsSync(to) && readFileSync(to).equals(readFileSync(from))) continue;
    const temporary = `${to}.${process.pid}.tmp`;
    copyFileSync(from, temporary);
    renameSync(temporary, to);
    changed.push(name);
  }
  for (const name of readdirSync(target)) {
    if (!names.includes(name)) { // renamed or removed upstream, or a leftover temporary file
      rmSync(path.join(target, name), { recursive: true, force: true });
      changed.push(name);
    }
  }
  return changed;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  copyProtos();
}

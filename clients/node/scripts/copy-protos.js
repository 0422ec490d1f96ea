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
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE = path.resolve(here, '../../../proto/pausable/v1');
export const TARGET = path.resolve(here, '../proto/pausable/v1');

/** The .proto file names in `dir` (sorted). */
export const protoFiles = (dir) => readdirSync(dir).filter((name) => name.endsWith('.proto')).sort();

export function copyProtos({ source = SOURCE, target = TARGET } = {}) {
  if (!existsSync(source)) {
    if (existsSync(target)) return []; // an installed copy: its protos came with it
    throw new Error(`no ${source}: run this from a checkout of the pausable repository`);
  }
  rmSync(target, { recursive: true, force: true }); // no stale file survives a rename upstream
  mkdirSync(target, { recursive: true });
  const names = protoFiles(source);
  for (const name of names) copyFileSync(path.join(source, name), path.join(target, name));
  return names;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  copyProtos();
}

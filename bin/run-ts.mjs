#!/usr/bin/env node
// Runs a TypeScript entry point of this repo under Node: `node bin/run-ts.mjs path/to/entry.ts args...`.
import './register.mjs';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const [entry, ...rest] = process.argv.slice(2);
process.argv = [process.argv[0], entry, ...rest];
await import(pathToFileURL(resolve(entry)).href);

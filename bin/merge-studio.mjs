#!/usr/bin/env node
// The `merge-studio` command: runs src/cli/main.ts under Node.
import './register.mjs';

const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));

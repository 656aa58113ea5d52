#!/usr/bin/env node
// The `merge-studio` command: runs src/cli/main.ts under Node.
import { register } from 'node:module';

const swiftshader = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES) process.env.VK_ICD_FILENAMES = swiftshader;
register('./wgsl-hook.mjs', import.meta.url);
const { register: registerTsx } = await import('tsx/esm/api');
registerTsx();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));

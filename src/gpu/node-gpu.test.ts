/**
 * Adapter choice in Node (node-gpu.ts), in child processes so each starts with its own environment:
 * with VK_ICD_FILENAMES unset and no system driver Dawn accepts (this machine's Mesa drivers are
 * refused), the SwiftShader fallback is used and reported as such; with it set, exactly that driver;
 * a second request in the same process gets the same driver (it once found no adapter after a fallback).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SWIFTSHADER_ICD } from './node-gpu.ts';

const script = `
import { requestNodeGpu } from './src/gpu/node-gpu.ts';
const h = await requestNodeGpu();
// A second device in the same process (the bench opens several) comes from the same driver.
const again = await requestNodeGpu();
console.log(JSON.stringify({ driver: h.driver, fallback: h.adapterInfo.isFallbackAdapter, icd: process.env.VK_ICD_FILENAMES ?? null, again: again.adapterInfo.isFallbackAdapter === h.adapterInfo.isFallbackAdapter }));
h.device.destroy();
again.device.destroy();
process.exit(0);
`;

function run(env: Record<string, string | undefined>): { driver: string; fallback: boolean; icd: string | null; again: boolean } {
  const res = spawnSync(process.execPath, ['--import', './bin/register.mjs', '--input-type=module', '-e', script], {
    cwd: new URL('../..', import.meta.url).pathname,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  const line = res.stdout.trim().split('\n').pop() ?? '';
  if (res.status !== 0 || !line.startsWith('{')) throw new Error(`child failed (${res.status}): ${res.stderr}`);
  return JSON.parse(line);
}

describe('requestNodeGpu', () => {
  it('takes the driver VK_ICD_FILENAMES names', () => {
    expect(run({ VK_ICD_FILENAMES: SWIFTSHADER_ICD })).toEqual({ driver: 'swiftshader', fallback: true, icd: SWIFTSHADER_ICD, again: true });
  });

  it('uses the system driver when Dawn accepts one, else falls back to SwiftShader', () => {
    expect(existsSync(SWIFTSHADER_ICD)).toBe(true);
    // Whether this machine has a system adapter, asked of Dawn directly in a clean process.
    const probe = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', "import { create, globals } from 'webgpu'; Object.assign(globalThis, globals); const a = await create([]).requestAdapter(); console.log(a ? 'adapter' : 'none'); process.exit(0);"],
      { cwd: new URL('../..', import.meta.url).pathname, env: { ...process.env, VK_ICD_FILENAMES: undefined }, encoding: 'utf8', timeout: 60_000 },
    );
    const systemAdapter = probe.stdout.trim().split('\n').pop() === 'adapter';
    const got = run({ VK_ICD_FILENAMES: undefined });
    if (systemAdapter) expect(got).toMatchObject({ driver: 'system', again: true });
    else expect(got).toEqual({ driver: 'swiftshader', fallback: true, icd: SWIFTSHADER_ICD, again: true });
  });
});

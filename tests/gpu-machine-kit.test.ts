/**
 * The GPU-machine kit (scripts/gpu-machine): a borrowed GPU machine has no node_modules, so the
 * bench travels as one bundle that may load nothing at run time but Node's built-ins and Dawn's
 * addon (carried beside it). This runs prepare.sh's bundling step and checks exactly that, plus
 * that the WGSL kernels are inlined as text and that the shell scripts parse. The whole kit (Node,
 * Dawn, the Vulkan loader, a run on SwiftShader from a copy without node_modules) is checked by
 * hand, as the README's "On a GPU machine" says: it takes minutes.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleBench, externalImports } from '../scripts/gpu-machine/bundle.mjs';

const dir = mkdtempSync(join(tmpdir(), 'gpu-kit-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('GPU-machine kit', () => {
  it('bundles the bench into one file that imports only Node built-ins, with the WGSL inlined and Dawn loaded beside it', async () => {
    const outfile = join(dir, 'bench.mjs');
    const meta = await bundleBench({ outfile });
    const inputs = Object.keys(meta.inputs);
    // The bench and its sections, the engine, and the webgpu package's loader are inside.
    for (const want of ['bench/bench.ts', 'bench/subspace.ts', 'bench/linalg.ts', 'src/gpu/engine.ts', 'node_modules/webgpu/index.js']) {
      expect(inputs).toContain(want);
    }
    expect(inputs.filter((i) => i.endsWith('.wgsl')).length).toBeGreaterThan(5);
    expect(inputs.filter((i) => i.endsWith('.node'))).toEqual([]);

    const external = externalImports(meta);
    expect(external.length).toBeGreaterThan(0);
    const builtins = new Set(builtinModules);
    expect(external.filter((p) => !builtins.has(p.replace(/^node:/, '')))).toEqual([]);

    const text = readFileSync(outfile, 'utf8');
    const codec = readFileSync('src/shaders/codec.wgsl', 'utf8');
    expect(text).toContain(JSON.stringify(codec.split('\n')[0]).slice(1, -1));
    // webgpu/index.js requires <bundle dir>/dist/<platform>-<arch>/dawn.node: prepare.sh puts it there.
    expect(text).toMatch(/join\(__dirname, "dist", `\$\{process\.platform\}-\$\{arch\}`, "dawn\.node"\)/);
    // require() calls esbuild left in place (bundled CommonJS code) name built-ins only.
    const required = [...text.matchAll(/__require\("([^"]+)"\)/g)].map((m) => m[1]);
    expect(required.filter((p) => !builtins.has(p.replace(/^node:/, '')))).toEqual([]);
  });

  it('has shell scripts that parse', () => {
    for (const script of ['scripts/gpu-machine/prepare.sh', 'scripts/gpu-machine/run.sh']) {
      const r = spawnSync('bash', ['-n', script], { encoding: 'utf8' });
      expect(r.stderr, script).toBe('');
      expect(r.status, script).toBe(0);
    }
  });
});

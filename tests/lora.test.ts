/**
 * LoRA through the CLI on the golden checkpoints: `extract-lora` writes a PEFT adapter (names,
 * shapes, adapter_config.json) whose factors reproduce the fine-tune within f32 rounding at full
 * rank and report their true error at lower rank; a recipe reading `base+adapter` gives the model
 * the adapter was extracted from, to the rank's error, on the CPU and the GPU.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from '../src/cli/cli.testutil.ts';
import { readSafetensorsFile, tensorValues, type RawTensor } from './helpers/safetensors-file.ts';

const MODELS = resolve(__dirname, 'fixtures/golden/models/llama-f32');
const work = mkdtempSync(join(tmpdir(), 'merge-studio-lora-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const base = readSafetensorsFile(join(MODELS, 'base/model.safetensors'));
const expert = readSafetensorsFile(join(MODELS, 'expert1/model.safetensors'));
const LINEAR = ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj'];
const modules = [0, 1, 2, 3].flatMap((l) => LINEAR.map((m) => `model.layers.${l}.${m}`));

/** base + B·A in f64 from the adapter's factors. */
function applied(adapter: Map<string, RawTensor>, module: string): Float64Array {
  const a = adapter.get(`base_model.model.${module}.lora_A.weight`)!;
  const b = adapter.get(`base_model.model.${module}.lora_B.weight`)!;
  const [r, n] = a.shape;
  const m = b.shape[0];
  const av = tensorValues(a);
  const bv = tensorValues(b);
  const w = tensorValues(base.get(`${module}.weight`)!);
  const out = Float64Array.from(w);
  for (let i = 0; i < m; i++) for (let k = 0; k < r; k++) for (let j = 0; j < n; j++) out[i * n + j] += bv[i * r + k] * av[k * n + j];
  return out;
}

/** ‖got − want‖_F / ‖want − base‖_F for one module. */
function relativeError(got: ArrayLike<number>, module: string): number {
  const x = tensorValues(expert.get(`${module}.weight`)!);
  const b = tensorValues(base.get(`${module}.weight`)!);
  let e = 0;
  let d = 0;
  for (let i = 0; i < x.length; i++) {
    e += (got[i] - x[i]) ** 2;
    d += (x[i] - b[i]) ** 2;
  }
  return Math.sqrt(e / d);
}

/** The per-module errors extract-lora reports on stderr. */
function reported(stderr: string): Map<string, number> {
  return new Map([...stderr.matchAll(/ (model\.layers\.\S+) \[\d+×\d+\] r=\d+: relative error (\S+)/g)].map((m) => [m[1], Number(m[2])]));
}

describe('merge-studio extract-lora', () => {
  it('at full rank reproduces the fine-tune within f32 rounding, in PEFT format', async () => {
    const out = join(work, 'full');
    const { code, stderr } = await cli(['extract-lora', join(MODELS, 'expert1'), '--base', join(MODELS, 'base'), '--rank', '64', '--out', out, '--backend', 'cpu']);
    expect(code, stderr).toBe(0);
    const adapter = readSafetensorsFile(join(out, 'adapter_model.safetensors'));
    expect(adapter.size).toBe(2 * modules.length);
    const config = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', r: 64, lora_alpha: 64, target_modules: ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj'], base_model_name_or_path: join(MODELS, 'base') });
    // k/v projections are 32×64 (grouped-query): their own full rank 32, alpha = r.
    expect(config.rank_pattern['model.layers.0.self_attn.k_proj']).toBe(32);
    expect(config.alpha_pattern).toEqual(config.rank_pattern);
    expect(adapter.get('base_model.model.model.layers.2.self_attn.k_proj.lora_A.weight')!.shape).toEqual([32, 64]);
    expect(adapter.get('base_model.model.model.layers.2.mlp.down_proj.lora_B.weight')!.shape).toEqual([64, 64]);
    const errors = reported(stderr);
    expect(errors.size).toBe(modules.length);
    for (const module of modules) {
      expect(relativeError(applied(adapter, module), module), module).toBeLessThan(2e-5);
      expect(errors.get(module)!, module).toBeLessThan(2e-5);
    }
    // Norms changed too, and a LoRA cannot carry them: said so.
    expect(stderr).toMatch(/not in the adapter \(not a linear layer\): model\.layers\.0\.input_layernorm\.weight changed by/);
  });

  it('at rank 4 reports the error its factors really have', async () => {
    const out = join(work, 'r4');
    const { code, stderr } = await cli(['extract-lora', join(MODELS, 'expert1'), '--base', join(MODELS, 'base'), '--rank', '4', '--out', out, '--backend', 'cpu']);
    expect(code, stderr).toBe(0);
    const adapter = readSafetensorsFile(join(out, 'adapter_model.safetensors'));
    const errors = reported(stderr);
    for (const module of modules) {
      const own = relativeError(applied(adapter, module), module);
      expect(own, module).toBeGreaterThan(0.05);
      expect(own, module).toBeLessThan(1);
      expect(Math.abs(errors.get(module)! - own), module).toBeLessThan(1e-4 * own);
    }
  });

  it('refuses a rank that is not a positive integer', async () => {
    const { code, stderr } = await cli(['extract-lora', join(MODELS, 'expert1'), '--base', join(MODELS, 'base'), '--rank', '0', '--out', join(work, 'x')]);
    expect(code).toBe(2);
    expect(stderr).toContain('--rank must be a positive integer, not "0"');
  });
});

describe('a LoRA adapter in a recipe (base+adapter)', () => {
  it.each(['cpu', 'gpu'])('equals the model it was extracted from, to the rank\'s error (%s)', async (backend) => {
    const adapterDir = join(work, `r8-${backend}`);
    const extracted = await cli(['extract-lora', join(MODELS, 'expert1'), '--base', join(MODELS, 'base'), '--rank', '8', '--out', adapterDir, '--backend', 'cpu']);
    expect(extracted.code, extracted.stderr).toBe(0);
    const errors = reported(extracted.stderr);
    const recipe = join(work, `lora-${backend}.yml`);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(recipe, `models:\n  - model: ${join(MODELS, 'base')}+${adapterDir}\nmerge_method: passthrough\ndtype: float32\n`);
    const out = join(work, `merged-${backend}`);
    const { code, stderr } = await cli(['merge', recipe, '--out', out, '--quiet', '--backend', backend]);
    expect(code, stderr).toBe(0);
    const merged = readSafetensorsFile(join(out, 'model.safetensors'));
    for (const module of modules) {
      const got = tensorValues(merged.get(`${module}.weight`)!);
      expect(Math.abs(relativeError(got, module) - errors.get(module)!), module).toBeLessThan(1e-4);
    }
    // Everything the adapter does not touch is the base's, bit for bit.
    for (const name of ['model.norm.weight', 'model.layers.1.input_layernorm.weight', 'lm_head.weight']) {
      expect(Buffer.from(merged.get(name)!.bytes).equals(Buffer.from(base.get(name)!.bytes)), name).toBe(true);
    }
  });
});

/** The `merge-studio` command: output folder contents, sharding, inspect, and one-line errors. */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { cli } from '../src/cli/cli.testutil.ts';
import { readSafetensorsFile } from './helpers/safetensors-file.ts';

const ROOT = resolve(__dirname, '..');
const MODELS = resolve(__dirname, 'fixtures/golden/models');
const work = mkdtempSync(join(tmpdir(), 'merge-studio-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function recipe(name: string, text: string): string {
  const path = join(work, name);
  writeFileSync(path, text);
  return path;
}

const TIES = `models:
  - model: ${MODELS}/llama-bf16/expert1
    parameters: {weight: 1, density: 0.5}
  - model: ${MODELS}/llama-bf16/expert2
    parameters: {weight: 0.5, density: 0.7}
merge_method: ties
base_model: ${MODELS}/llama-bf16/base
dtype: float32
out_dtype: float16
`;

describe('merge-studio merge', () => {
  it('writes model, config (torch_dtype updated), recipe and model card, with progress on stderr', async () => {
    const out = join(work, 'ties-out');
    const { code, stderr } = await cli(['merge', recipe('ties.yml', TIES), '--out', out, '--backend', 'cpu']);
    expect(code).toBe(0);
    expect(stderr).toMatch(/39\/39 tensors/);
    expect(readdirSync(out).sort()).toEqual(['README.md', 'config.json', 'mergekit_config.yml', 'model.safetensors']);
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(config.torch_dtype).toBe('float16');
    expect(config.model_type).toBe('llama');
    const written = parseYaml(readFileSync(join(out, 'mergekit_config.yml'), 'utf8'));
    expect(written).toEqual(parseYaml(TIES));
    const card = readFileSync(join(out, 'README.md'), 'utf8');
    expect(card).toContain('ties');
    expect(card).toContain(`${MODELS}/llama-bf16/expert2`);
    const tensors = readSafetensorsFile(join(out, 'model.safetensors'));
    expect(tensors.size).toBe(39);
    expect([...tensors.values()].every((t) => t.dtype === 'F16')).toBe(true);
  });

  it('reports the whole-model passes of a method before the merge (LiNeS without alpha)', async () => {
    const lines = recipe(
      'lines.yml',
      `models:\n  - model: ${MODELS}/llama-f32/expert1\n  - model: ${MODELS}/llama-f32/expert2\nmerge_method: lines\nbase_model: ${MODELS}/llama-f32/base\nparameters: {beta: 0.5}\n`,
    );
    const { code, stderr } = await cli(['merge', lines, '--out', join(work, 'lines-out'), '--backend', 'cpu']);
    expect(code).toBe(0);
    const passLine = stderr.indexOf('pass 1 (lines: L1 norms for the default alpha): 39/39 tensors');
    expect(passLine).toBeGreaterThanOrEqual(0);
    expect(stderr.indexOf('39/39 tensors, ')).toBeGreaterThan(passLine);
  });

  it('shards by --shard-size with transformers names and an index', async () => {
    const out = join(work, 'sharded');
    const { code } = await cli(['merge', recipe('ties2.yml', TIES), '--out', out, '--backend', 'cpu', '--shard-size', '100kB', '--quiet']);
    expect(code).toBe(0);
    const shards = readdirSync(out).filter((f) => f.endsWith('.safetensors')).sort();
    expect(shards.length).toBeGreaterThan(2);
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    const index = JSON.parse(readFileSync(join(out, 'model.safetensors.index.json'), 'utf8'));
    expect(Object.keys(index.weight_map)).toHaveLength(39);
    let total = 0;
    for (const shard of shards) {
      const t = readSafetensorsFile(join(out, shard));
      for (const [name, v] of t) {
        expect(index.weight_map[name]).toBe(shard);
        total += v.bytes.byteLength;
      }
    }
    expect(index.metadata.total_size).toBe(total);
  });

  it('notes on stderr when the GPU backend runs on a software adapter (SwiftShader here)', async () => {
    const out = join(work, 'software-note');
    const { code, stderr } = await cli(['merge', recipe('soft.yml', TIES), '--out', out, '--backend', 'gpu']);
    expect(code).toBe(0);
    expect(stderr).toMatch(/SwiftShader/);
    expect(stderr).toMatch(/runs in software on the CPU; --backend cpu is usually faster/);
  });

  it('by default (--backend auto) a software adapter gives the CPU backend, and the note says why', async () => {
    const out = join(work, 'auto-backend');
    const { code, stderr } = await cli(['merge', recipe('auto.yml', TIES), '--out', out]);
    expect(code).toBe(0);
    expect(stderr).toMatch(/ties of 2 models on CPU \(\d+ threads?\)/);
    expect(stderr).toMatch(/SwiftShader.*runs in software: running on the CPU backend.*--backend gpu forces the GPU/);
  });

  it('copies tokenizer files from the base model', async () => {
    const base = join(work, 'base-with-tokenizer');
    cpSync(join(MODELS, 'llama-bf16/base'), base, { recursive: true });
    writeFileSync(join(base, 'tokenizer.json'), '{"version": "1.0"}');
    const r = recipe('tok.yml', TIES.replace(`${MODELS}/llama-bf16/base`, base));
    const out = join(work, 'tok-out');
    expect((await cli(['merge', r, '--out', out, '--backend', 'cpu', '--quiet'])).code).toBe(0);
    expect(readFileSync(join(out, 'tokenizer.json'), 'utf8')).toBe('{"version": "1.0"}');
  });

  it('a failed merge leaves no output folder and says why in one line', async () => {
    const broken = join(work, 'broken-expert');
    mkdirSync(broken);
    cpSync(join(MODELS, 'llama-bf16/expert2/config.json'), join(broken, 'config.json'));
    // A truncated copy of a real checkpoint: the header is intact, the data is cut short.
    const bytes = readFileSync(join(MODELS, 'llama-bf16/expert2/model.safetensors'));
    writeFileSync(join(broken, 'model.safetensors'), bytes.subarray(0, bytes.length - 1000));
    const out = join(work, 'never');
    const { code, stderr } = await cli(['merge', recipe('broken.yml', TIES.replace(`${MODELS}/llama-bf16/expert2`, broken)), '--out', out, '--backend', 'cpu']);
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^merge-studio: error: .*model\.safetensors/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(work).filter((f) => f.startsWith('never'))).toEqual([]);
  });

  it('reports a bad recipe value naming the key', async () => {
    const { code, stderr } = await cli(['merge', recipe('bad.yml', TIES.replace('density: 0.7', 'desnity: 0.7')), '--out', join(work, 'bad-out')]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/desnity/);
    expect(stderr).toMatch(/density/);
  });

  it('reports a model whose tensor shapes differ', async () => {
    const odd = join(work, 'other-arch');
    cpSync(join(MODELS, 'llama-bf16/expert1'), odd, { recursive: true });
    const { serializeSafetensors } = await import('../src/core/safetensors/writer.ts');
    writeFileSync(
      join(odd, 'model.safetensors'),
      serializeSafetensors([{ name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [259, 32], data: new Uint8Array(259 * 32 * 2) }]),
    );
    const { code, stderr } = await cli(['merge', recipe('odd.yml', TIES.replace(`${MODELS}/llama-bf16/expert1`, odd)), '--out', join(work, 'odd-out'), '--backend', 'cpu']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/other-arch lacks 38 tensors that other models have/);
    expect(stderr).toMatch(/\(and 1 more problem\)/);
  });

  it('checks compatibility from headers and configs before reading tensor data', async () => {
    const other = join(work, 'other-type');
    cpSync(join(MODELS, 'llama-bf16/expert1'), other, { recursive: true });
    const config = JSON.parse(readFileSync(join(other, 'config.json'), 'utf8'));
    writeFileSync(join(other, 'config.json'), JSON.stringify({ ...config, model_type: 'mistral' }));
    // Tensor data zeroed out: the check must fail on the config alone, before any of it is used.
    const bytes = readFileSync(join(other, 'model.safetensors'));
    const headerEnd = 8 + Number(bytes.readBigUInt64LE(0));
    bytes.fill(0, headerEnd);
    writeFileSync(join(other, 'model.safetensors'), bytes);
    const out = join(work, 'type-out');
    const { code, stderr } = await cli(['merge', recipe('type.yml', TIES.replace(`${MODELS}/llama-bf16/expert1`, other)), '--out', out, '--backend', 'cpu']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/cannot be merged/);
    expect(stderr).toMatch(/mistral/);
    expect(existsSync(out)).toBe(false);
  });

  it('rejects bad options with usage errors', async () => {
    expect((await cli(['merge', 'x.yml'])).stderr).toMatch(/--out/);
    expect((await cli(['merge', 'x.yml', '--out', 'y', '--backend', 'tpu'])).stderr).toMatch(/--backend must be one of auto, gpu, cpu, cpu-reference, not "tpu"/);
    expect((await cli(['merge', 'x.yml', '--out', 'y', '--shard-size', 'lots'])).stderr).toMatch(/--shard-size/);
    expect((await cli(['frobnicate'])).code).toBe(2);
  });
});

describe('merge-studio inspect', () => {
  it('lists tensors with dtype, shape and bytes, and totals', async () => {
    const { code, stdout } = await cli(['inspect', join(MODELS, 'llama-f32/base')]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/model\.layers\.0\.mlp\.up_proj\.weight\s+F32\s+\[176, 64\]\s+45056/);
    // 4 layers × (4 attention + 3 mlp + 2 norms) + embed + norm + lm_head
    expect(stdout).toMatch(/^39 tensors, /m);
  });

  it('names the file when it is not safetensors', async () => {
    const junk = join(work, 'junk.safetensors');
    writeFileSync(junk, 'not a safetensors file at all');
    const { code, stderr } = await cli(['inspect', junk]);
    expect(code).toBe(1);
    expect(stderr).toContain('junk.safetensors');
  });
});

describe('the merge-studio bin', () => {
  it('runs as a command and exits non-zero with one line on error', () => {
    const ok = spawnSync(process.execPath, [join(ROOT, 'bin/merge-studio.mjs'), 'inspect', join(MODELS, 'llama-bf16/base')], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/39 tensors/);
    const bad = spawnSync(process.execPath, [join(ROOT, 'bin/merge-studio.mjs'), 'merge', join(work, 'nope.yml'), '--out', join(work, 'nope')], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/nope\.yml/);
  });
});

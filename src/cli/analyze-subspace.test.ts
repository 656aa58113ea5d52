/**
 * `merge-studio analyze` and the subspace statistics: the JSON holds them (per weight matrix, per
 * layer, attention / MLP), with the k asked for by --subspace-rank; layer 0's overlaps and spectra
 * match a Jacobi SVD of the checkpoints' own task vectors (read here from the files, f64); the
 * summary prints the whole-model overlap matrix as the JSON has it; a bad --subspace-rank is a
 * usage error.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jacobiSvd } from '../../tests/helpers/dense-f64.ts';
import { readSafetensorsFile, tensorValues } from '../../tests/helpers/safetensors-file.ts';
import type { AnalysisResult } from '../gpu/analysis/types.ts';
import { cli } from './cli.testutil.ts';

const MODELS = resolve(__dirname, '../../tests/fixtures/golden/models/llama-f32');
const EXPERTS = ['expert1', 'expert2', 'expert3'];
const work = mkdtempSync(join(tmpdir(), 'merge-studio-analyze-subspace-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const recipePath = join(work, 'tsv.yml');
writeFileSync(
  recipePath,
  `models:\n${EXPERTS.map((e, i) => `  - model: ${MODELS}/${e}\n    parameters: {weight: ${1 - 0.25 * i}}\n`).join('')}merge_method: task_arithmetic\nbase_model: ${MODELS}/base\n`,
);

/** ‖U_iᵀU_j‖²_F / k from reference left singular vectors (m×r each, first k columns). */
function overlapOf(a: Float64Array, b: Float64Array, m: number, r: number, k: number): number {
  let s = 0;
  for (let p = 0; p < k; p++) {
    for (let q = 0; q < k; q++) {
      let d = 0;
      for (let i = 0; i < m; i++) d += a[i * r + p] * b[i * r + q];
      s += d * d;
    }
  }
  return s / k;
}

describe('merge-studio analyze: subspace statistics', () => {
  it('writes them to the JSON (checked against a Jacobi SVD) and prints the overlap matrix', async () => {
    const out = join(work, 'analysis.json');
    const { code, stdout, stderr } = await cli(['analyze', recipePath, '--json', out, '--backend', 'cpu', '--subspace-rank', '4']);
    expect(stderr).not.toMatch(/error/);
    expect(code).toBe(0);
    const r = JSON.parse(readFileSync(out, 'utf8')) as AnalysisResult;
    const sub = r.modelStats!.subspace;
    expect(sub.rank).toBe(4);
    expect(sub.layers).toHaveLength(4);
    expect(sub.layersByKind.attention[0].tensors).toBe(4);
    expect(sub.layersByKind.mlp[0].tensors).toBe(3);
    expect(sub.whole.tensors).toBe(28);
    expect(sub.definitions.length).toBeGreaterThan(0);

    const base = readSafetensorsFile(join(MODELS, 'base', 'model.safetensors'));
    const experts = EXPERTS.map((e) => readSafetensorsFile(join(MODELS, e, 'model.safetensors')));
    const layer0 = r.modelStats!.tensors.filter((t) => t.layer === 0 && t.subspace !== null);
    expect(layer0).toHaveLength(7);
    for (const t of layer0) {
      const [m, n] = t.shape;
      const rr = Math.min(m, n);
      const b = tensorValues(base.get(t.name)!);
      // The analysis's task vector: x − base in f32 (the files are F32).
      const svds = experts.map((e) => jacobiSvd(Float32Array.from(tensorValues(e.get(t.name)!), (v, i) => v - b[i]), m, n));
      svds.forEach((s, i) => {
        for (let j = 0; j < 4; j++) expect(Math.abs(t.subspace!.singularValues[i][j] - s.S[j]), `${t.name} σ_${j} of ${EXPERTS[i]}`).toBeLessThanOrEqual(1e-9 * s.S[0]);
      });
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          const want = overlapOf(svds[i].U, svds[j].U, m, rr, 4);
          expect(Math.abs(t.subspace!.overlap[i * 3 + j]! - want), `${t.name} overlap ${i},${j}`).toBeLessThanOrEqual(1e-9);
        }
      }
    }
    // Layer 0's mean is the mean of its seven matrices.
    for (let p = 0; p < 9; p++) {
      const mean = layer0.reduce((s, t) => s + t.subspace!.overlap[p]!, 0) / 7;
      expect(sub.layers[0].overlap[p]).toBeCloseTo(mean, 12);
    }

    expect(stdout).toContain(`subspace overlap of the top-4 left singular vectors`);
    expect(stdout).toContain(`mean over 28 weight matrices; random subspaces: ${sub.whole.chance!.toFixed(4)}`);
    const table = stdout.slice(stdout.indexOf('subspace overlap of'));
    const row = table.split('\n').find((l) => l.startsWith(`${MODELS}/expert2`))!;
    expect(row.trim().split(/\s+/).slice(1)).toEqual([...[0, 1, 2].map((j) => sub.whole.overlap[3 + j]!.toFixed(4)), sub.whole.effectiveRank[1]!.toFixed(2)]);
  });

  it('refuses a --subspace-rank that is not a positive integer', async () => {
    for (const bad of ['0', '2.5', 'many', '257']) {
      const { code, stderr } = await cli(['analyze', recipePath, '--subspace-rank', bad, '--backend', 'cpu']);
      expect(code).toBe(2);
      expect(stderr).toContain(`--subspace-rank must be an integer in [1, 256], not "${bad}"`);
    }
  });
});

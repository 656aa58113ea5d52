/**
 * The subspace views' data and render: the overlap heatmap (whole model, per layer by pair,
 * attention, MLP), the spectrum of one matrix and the effective rank per layer hold the numbers of
 * `merge-studio analyze --json` for the golden models, their CSV exports write them back at full
 * precision, and the static render draws one cell / point per value with its title, unit, one-line
 * explanation and export buttons.
 */
import { resolve } from 'node:path';
import { renderToStaticMarkup } from 'react-dom/server';
import { beforeAll, describe, expect, it } from 'vitest';
import { cliAnalysis } from '../../cli/cli.testutil.ts';
import type { AnalysisResult } from '../../gpu/analysis/types.ts';
import { AnalysisPanel } from './AnalysisPanel.tsx';
import { SpectrumChart, spectrumLegendLabel } from './SpectrumChart.tsx';
import { SubspaceViews } from './SubspaceViews.tsx';
import {
  effectiveRankSeries,
  layerMatrices,
  overlapExplanation,
  overlapMatrix,
  spectrumCsv,
  spectrumData,
} from './subspace-view-data.ts';
import { layerCsv, matrixCsv } from './view-data.ts';

const RECIPE = resolve(__dirname, '../../../tests/fixtures/golden/cases/ties-f32/recipe.yml');
let json: AnalysisResult;
const noDownload = () => undefined;

beforeAll(async () => {
  json = await cliAnalysis(RECIPE);
});

/** The CSV's cells (no quoted fields in these exports), numbers where they parse. */
function csvCells(text: string): string[][] {
  expect(text.endsWith('\r\n')).toBe(true);
  return text
    .slice(0, -2)
    .split('\r\n')
    .map((r) => r.split(','));
}

/** Attribute values of every element matching `tag` that has `attr`. */
function attrs(html: string, tag: string, attr: string): string[] {
  const re = new RegExp(`<${tag}\\b[^>]*\\b${attr}="([^"]*)"`, 'g');
  return [...html.matchAll(re)].map((m) => m[1]);
}

const NAMES = ['expert1', 'expert2', 'expert3'];

describe('subspace view data', () => {
  it('overlap heatmap of the whole model and of attention / MLP matrices: the JSON values, back from the CSV', () => {
    const s = json.modelStats!.subspace;
    const whole = overlapMatrix(json, { kind: 'whole' })!;
    expect(whole.rowLabels).toEqual(NAMES);
    expect(whole.columnLabels).toEqual(NAMES);
    expect(whole.values).toEqual(s.whole.overlap);
    expect(whole.title).toBe('Subspace overlap of task vectors, whole model (28 matrices)');
    expect(whole.unit).toContain(`top-${s.rank} left singular vectors`);
    expect(whole.unit).toContain(`random ≈ ${s.whole.chance!.toFixed(3)}`);
    const rows = csvCells(matrixCsv(whole));
    expect(rows[0]).toEqual(['', ...NAMES]);
    rows.slice(1).forEach((r, i) => {
      expect(r[0]).toBe(NAMES[i]);
      r.slice(1).forEach((v, j) => expect(Number(v)).toBe(s.whole.overlap[i * 3 + j]));
    });
    // Off the diagonal, below 1 (different fine-tunes); on it, 1.
    for (let i = 0; i < 3; i++) expect(s.whole.overlap[i * 4]).toBeCloseTo(1, 9);
    expect(s.whole.overlap[1]).toBeLessThan(0.99);
    expect(overlapMatrix(json, { kind: 'tensor-kind', tensorKind: 'attention' })!.values).toEqual(s.byKind.attention!.overlap);
    expect(overlapMatrix(json, { kind: 'tensor-kind', tensorKind: 'mlp' })!.title).toBe('Subspace overlap of task vectors, MLP matrices (12 matrices)');
  });

  it('overlap per layer: one row per pair of models, one column per layer', () => {
    const s = json.modelStats!.subspace;
    const d = overlapMatrix(json, { kind: 'per-layer', tensorKind: 'all' })!;
    expect(d.rowLabels).toEqual(['expert1 × expert2', 'expert1 × expert3', 'expert2 × expert3']);
    expect(d.columnLabels).toEqual(['0', '1', '2', '3']);
    const pairs = [1, 2, 5];
    expect(d.values).toEqual(pairs.flatMap((p) => s.layers.map((g) => g.overlap[p])));
    const mlp = overlapMatrix(json, { kind: 'per-layer', tensorKind: 'mlp' })!;
    expect(mlp.values).toEqual(pairs.flatMap((p) => s.layersByKind.mlp.map((g) => g.overlap[p])));
    const rows = csvCells(matrixCsv(d));
    expect(rows[1].slice(1).map(Number)).toEqual(s.layers.map((g) => g.overlap[1]));
  });

  it('spectrum of one matrix: its σ_j per model, effective rank and top-k share, in the CSV too', () => {
    expect(layerMatrices(json, 1)).toEqual([
      'self_attn.q_proj.weight',
      'self_attn.k_proj.weight',
      'self_attn.v_proj.weight',
      'self_attn.o_proj.weight',
      'mlp.gate_proj.weight',
      'mlp.up_proj.weight',
      'mlp.down_proj.weight',
    ]);
    const t = json.modelStats!.tensors.find((x) => x.name === 'model.layers.1.mlp.down_proj.weight')!;
    const d = spectrumData(json, 1, 'mlp.down_proj.weight')!;
    expect(d.tensor).toBe(t.name);
    expect(d.index).toEqual(Array.from({ length: 16 }, (_, j) => j + 1));
    d.series.forEach((s, i) => {
      expect(s.label).toBe(NAMES[i]);
      expect(s.values).toEqual(t.subspace!.singularValues[i]);
      expect(s.effectiveRank).toBe(t.subspace!.effectiveRank[i]);
    });
    expect(d.unit).toContain('log scale');
    expect(d.unit).toContain('[64×176]');
    const rows = csvCells(spectrumCsv(d));
    expect(rows[0]).toEqual(['j', ...NAMES]);
    expect(rows[1].map(Number)).toEqual([1, ...t.subspace!.singularValues.map((s) => s[0])]);
    expect(rows[17][0]).toBe('effective rank');
    expect(rows[17].slice(1).map(Number)).toEqual(t.subspace!.effectiveRank);
    expect(rows[18].slice(1).map(Number)).toEqual(t.subspace!.energy);
    expect(spectrumData(json, 1, 'input_layernorm.weight')).toBeNull();
    expect(spectrumData(json, 9, 'mlp.down_proj.weight')).toBeNull();
  });

  it('effective rank per layer: the layer means, per kind', () => {
    const s = json.modelStats!.subspace;
    const all = effectiveRankSeries(json, 'all')!;
    expect(all.layers).toEqual([0, 1, 2, 3]);
    all.series.forEach((ser, i) => expect(ser.values).toEqual(s.layers.map((g) => g.effectiveRank[i])));
    const att = effectiveRankSeries(json, 'attention')!;
    att.series.forEach((ser, i) => expect(ser.values).toEqual(s.layersByKind.attention.map((g) => g.effectiveRank[i])));
    expect(att.unit).toContain(`top ${s.rank} singular values`);
    expect(csvCells(layerCsv(all))[1].slice(1).map(Number)).toEqual(s.layers[0].effectiveRank);
  });

  it('the explanation names what the subspace methods do with the overlap', () => {
    expect(overlapExplanation(json)).not.toContain('TSV-M');
    const tsv = { ...json, recipeStats: { ...json.recipeStats!, method: 'tsv' } };
    expect(overlapExplanation(tsv)).toContain('TSV-M decorrelates these subspaces');
    expect(overlapExplanation({ ...json, recipeStats: { ...json.recipeStats!, method: 'iso_cts' } })).toContain('Iso-CTS');
    expect(overlapExplanation(json)).toContain('unweighted');
  });
});

describe('subspace views (static render)', () => {
  it('draws the overlap cells, the spectrum points and the effective-rank lines with titles, notes and exports', () => {
    const html = renderToStaticMarkup(<SubspaceViews result={json} download={noDownload} />);
    for (const id of ['analysis.overlap', 'analysis.spectrum', 'analysis.erank', 'analysis.overlap.note', 'analysis.spectrum.note', 'analysis.erank.note']) {
      expect(html).toContain(`data-testid="${id}"`);
    }
    for (const id of ['analysis.overlap', 'analysis.spectrum', 'analysis.erank']) {
      for (const ext of ['svg', 'png', 'csv']) expect(html).toContain(`data-testid="${id}.export.${ext}"`);
    }
    const overlap = html.slice(html.indexOf('data-testid="analysis.overlap"'), html.indexOf('data-testid="analysis.spectrum.note"'));
    expect(attrs(overlap, 'rect', 'data-value').map(Number)).toEqual(json.modelStats!.subspace.whole.overlap);
    expect(overlap).toContain('Subspace overlap of task vectors, whole model');
    // The spectrum shows layer 0's first matrix by default: 16 points per model, σ_1 first.
    const spectrum = html.slice(html.indexOf('data-testid="analysis.spectrum"'), html.indexOf('data-testid="analysis.erank.note"'));
    const q = json.modelStats!.tensors.find((t) => t.name === 'model.layers.0.self_attn.q_proj.weight')!.subspace!;
    expect(attrs(spectrum, 'circle', 'data-value').map(Number)).toEqual(q.singularValues.flat());
    expect(spectrum).toContain(spectrumLegendLabel({ label: 'expert1', values: [], effectiveRank: q.effectiveRank[0], energy: null }).replace(/&/g, '&amp;'));
    expect(spectrum).toContain('>σ_j<');
    const erank = html.slice(html.indexOf('data-testid="analysis.erank"'));
    expect(attrs(erank, 'circle', 'data-value')).toHaveLength(3 * 4);
  });

  it('puts the σ axis on a log scale: σ_1 sits higher than σ_16 by the log of their ratio', () => {
    const d = spectrumData(json, 0, 'self_attn.q_proj.weight')!;
    const one = { ...d, series: [d.series[0]] };
    const html = renderToStaticMarkup(<SpectrumChart testId="s" data={one} download={noDownload} />);
    const cy = attrs(html, 'circle', 'cy').map(Number);
    const v = d.series[0].values as number[];
    // Equal ratios, equal steps: (y_1 − y_2)/(y_1 − y_16) = log(σ_1/σ_2)/log(σ_1/σ_16).
    expect((cy[1] - cy[0]) / (cy[15] - cy[0])).toBeCloseTo(Math.log(v[0] / v[1]) / Math.log(v[0] / v[15]), 6);
  });

  it('sits in the analysis panel beside the cosine heatmap', () => {
    const recipe = { mergeMethod: 'tsv', models: NAMES.map((m) => ({ model: `../../models/llama-f32/${m}`, parameters: {} })), baseModel: '../../models/llama-f32/base', parameters: {} };
    const html = renderToStaticMarkup(<AnalysisPanel result={json} recipe={recipe} download={noDownload} />);
    const cosine = html.indexOf('data-testid="analysis.cosine"');
    const overlap = html.indexOf('data-testid="analysis.overlap.note"');
    expect(cosine).toBeGreaterThan(0);
    expect(overlap).toBeGreaterThan(cosine);
    expect(html.indexOf('data-testid="analysis.layers.line"')).toBeGreaterThan(overlap);
  });
});

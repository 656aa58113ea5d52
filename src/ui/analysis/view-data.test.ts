/**
 * The analysis views' data: what each chart and its CSV export hold, checked against the JSON that
 * `merge-studio analyze` writes for the golden models (the same numbers, read back from the CSV).
 */
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cliAnalysis } from '../../cli/cli.testutil.ts';
import { BIN } from '../../gpu/analysis/bins.ts';
import type { AnalysisResult } from '../../gpu/analysis/types.ts';
import {
  coefficientSeries,
  cosineByLayer,
  cosineMatrix,
  liveSummary,
  histogramCsv,
  histogramData,
  layerCsv,
  layerSeries,
  LAYER_METRICS,
  matrixCsv,
  seriesMatrix,
  shortNames,
  slug,
  toCsv,
} from './view-data.ts';

const RECIPE = resolve(__dirname, '../../../tests/fixtures/golden/cases/ties-f32/recipe.yml');
let json: AnalysisResult;

beforeAll(async () => {
  json = await cliAnalysis(RECIPE);
});

/** RFC 4180 parsing (quoted fields may hold commas, quotes and newlines). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
  }
  return rows;
}

const num = (s: string) => (s === '' ? null : Number(s));

describe('CSV export holds the JSON numbers', () => {
  it('cosine matrices: whole model, each layer, each tensor kind', () => {
    const n = json.models.length;
    const scopes = [
      { scope: { kind: 'whole' as const }, want: json.modelStats!.whole.cosine },
      ...json.modelStats!.layers.map((l, k) => ({ scope: { kind: 'layer' as const, layer: k }, want: l.cosine })),
      ...Object.entries(json.modelStats!.byKind).map(([kind, g]) => ({ scope: { kind: 'tensor-kind' as const, tensorKind: kind as never }, want: g!.cosine })),
    ];
    expect(scopes.length).toBeGreaterThan(6);
    for (const { scope, want } of scopes) {
      const rows = parseCsv(matrixCsv(cosineMatrix(json, scope)!));
      expect(rows[0]).toEqual(['', ...shortNames(json.models)]);
      expect(rows).toHaveLength(n + 1);
      const got = rows.slice(1).flatMap((r) => r.slice(1).map(num));
      expect(got).toEqual(want);
    }
  });

  it('cosine per layer: one row per pair of models, one column per layer, the CLI JSON values', () => {
    const n = json.models.length;
    const d = cosineByLayer(json)!;
    const names = shortNames(json.models);
    expect(d.rowLabels).toHaveLength((n * (n - 1)) / 2);
    expect(d.rowLabels[0]).toBe(`${names[0]} × ${names[1]}`);
    expect(d.columnLabels).toEqual(json.modelStats!.layers.map((_, k) => String(k)));
    json.modelStats!.layers.forEach((l, k) => expect(d.values[k]).toBe(l.cosine[1]));
  });

  it('live summary: kept, share and conflicts of each model, and its share per layer', () => {
    const s = liveSummary(json)!;
    const rs = json.recipeStats!;
    json.models.forEach((ref, i) => {
      const m = s.perModel.get(ref)!;
      expect(m.kept).toBe(rs.whole.keptFraction![i]);
      expect(m.share).toBe(rs.whole.share![i]);
      expect(m.shareByLayer).toEqual(rs.layers.map((l) => l.share![i]));
    });
    expect(s.conflictAfterTrim).toBe(rs.whole.conflictAll);
  });

  it('per-layer metrics, model by model', () => {
    const m = json.modelStats!;
    const r = json.recipeStats!;
    const n = json.models.length;
    const expected: Record<string, (layer: number, i: number) => number> = {
      norm: (k, i) => m.layers[k].norms[i],
      relativeChange: (k, i) => m.layers[k].relativeChange![i],
      keptFraction: (k, i) => r.layers[k].keptFraction![i],
      share: (k, i) => r.layers[k].share![i],
    };
    for (const metric of LAYER_METRICS) {
      const d = layerSeries(json, metric);
      const rows = parseCsv(layerCsv(d));
      expect(rows[0][0]).toBe('layer');
      expect(rows).toHaveLength(json.numLayers + 1);
      const want = expected[metric];
      if (!want) continue;
      for (let k = 0; k < json.numLayers; k++) {
        expect(Number(rows[k + 1][0])).toBe(k);
        for (let i = 0; i < n; i++) expect(num(rows[k + 1][i + 1]), `${metric} layer ${k} model ${i}`).toBe(want(k, i));
      }
    }
    // Conflicts: per model the mean of its pairwise rates, then the all-models rate.
    const rows = parseCsv(layerCsv(layerSeries(json, 'conflict')));
    expect(rows[0].at(-1)).toBe('all models');
    for (let k = 0; k < json.numLayers; k++) {
      const pair = m.layers[k].pairConflict;
      const mean0 = pair.slice(1, n).reduce((a, b) => a + b, 0) / (n - 1);
      expect(num(rows[k + 1][1])).toBeCloseTo(mean0, 15);
      expect(num(rows[k + 1][n + 1])).toBe(m.layers[k].conflictAll);
    }
  });

  it('effective densities per layer follow the recipe gradient', () => {
    // expert2: density [1, 0.7, 0.1] over 4 layers → t = 0, 1/3, 2/3, 1.
    const d = coefficientSeries(json, 'density')!;
    const rows = parseCsv(layerCsv(d));
    const col = rows[0].indexOf(shortNames(json.models)[1]);
    const want = [1, 0.8, 0.5, 0.1];
    rows.slice(1).forEach((r, k) => expect(num(r[col])).toBeCloseTo(want[k], 12));
    expect(coefficientSeries(json, 'no_such_parameter')).toBeNull();
  });

  it('histograms: pooled and per tensor, with the kept entries and trim thresholds', () => {
    const pooled = histogramData(json, null)!;
    const rows = parseCsv(histogramCsv(pooled));
    expect(rows[0].slice(0, 2)).toEqual(['bin_lo', 'bin_hi']);
    expect(rows).toHaveLength(json.histogram.edges.length);
    const n = json.models.length;
    rows.slice(1).forEach((r, k) => {
      expect(num(r[0])).toBe(json.histogram.edges[k]);
      expect(num(r[1])).toBe(json.histogram.edges[k + 1]);
      for (let i = 0; i < n; i++) {
        expect(num(r[2 + i])).toBe(json.modelStats!.pooledHistograms[i][BIN.firstRegular + k]);
        expect(num(r[2 + n + i])).toBe(json.recipeStats!.pooledKeptHistograms![i][BIN.firstRegular + k]);
      }
    });
    expect(pooled.thresholds).toBeNull();

    const name = 'model.layers.2.mlp.down_proj.weight';
    const one = histogramData(json, name)!;
    const stats = json.recipeStats!.tensors.find((t) => t.name === name)!;
    // TIES keeps the top |δ|: a lower threshold (the smallest kept), no upper one.
    one.thresholds!.forEach((t, i) => {
      expect(t.lo).toBe(stats.keptHistograms![i].minNonzero);
      expect(t.hi).toBeNull();
    });
    expect(one.outside[0].zero).toBe(json.modelStats!.tensors.find((t) => t.name === name)!.histograms[0].counts[BIN.zero]);
    expect(histogramData(json, 'no.such.tensor')).toBeNull();
  });

  it('layer × model heatmaps hold the series values', () => {
    const d = layerSeries(json, 'keptFraction');
    const m = seriesMatrix(d);
    expect(m.rowLabels).toEqual(d.series.map((s) => s.label));
    expect(m.values).toEqual(d.series.flatMap((s) => s.values));
  });
});

describe('CSV and names', () => {
  it('quotes fields with commas, quotes and newlines, and leaves missing values empty', () => {
    expect(toCsv([['a,b', 'say "hi"', null, 1.5e-7], ['x\ny', 2]])).toBe('"a,b","say ""hi""",,1.5e-7\r\n"x\ny",2\r\n');
  });

  it('shortens model references to their last segment unless that is ambiguous', () => {
    expect(shortNames(['org/a', './models/b/', 'c'])).toEqual(['a', 'b', 'c']);
    expect(shortNames(['x/model', 'y/model'])).toEqual(['x/model', 'y/model']);
  });

  it('makes file names from titles', () => {
    expect(slug('Cosine similarity of task vectors, layer 3')).toBe('cosine-similarity-of-task-vectors-layer-3');
    expect(slug('‖δ‖')).toBe('chart');
  });
});

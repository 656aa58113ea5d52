/**
 * What each analysis chart shows, as plain data taken from an AnalysisResult: the cosine matrix of a
 * scope, layer × model series of a metric, magnitude histograms with trim thresholds. The charts
 * draw these, and the CSV export writes these same numbers (full precision, so a CSV value is the
 * JSON value of `merge-studio analyze`).
 */
import { BIN } from '../../gpu/analysis/bins.ts';
import type { AnalysisResult, ModelGroupStats, RecipeGroupStats, TensorKind } from '../../gpu/analysis/types.ts';

/** Which tensors a cosine matrix covers. */
export type CosineScope = { kind: 'whole' } | { kind: 'layer'; layer: number } | { kind: 'tensor-kind'; tensorKind: TensorKind };

export interface MatrixData {
  title: string;
  rowLabels: string[];
  columnLabels: string[];
  /** rows × columns, row-major; null where the value does not exist. */
  values: (number | null)[];
  unit: string;
}

/** Short model names for axes: the last path segment of each reference (unique, or the whole reference). */
export function shortNames(models: readonly string[]): string[] {
  const short = models.map((m) => m.replace(/[\\/]+$/, '').split(/[\\/]/).pop() || m);
  return new Set(short).size === short.length ? short : [...models];
}

function scopeGroup(r: AnalysisResult, scope: CosineScope): ModelGroupStats | undefined {
  const m = r.modelStats;
  if (!m) return undefined;
  switch (scope.kind) {
    case 'whole':
      return m.whole;
    case 'layer':
      return m.layers[scope.layer];
    case 'tensor-kind':
      return m.byKind[scope.tensorKind];
    default: {
      const never: never = scope;
      return never;
    }
  }
}

export function scopeLabel(scope: CosineScope): string {
  switch (scope.kind) {
    case 'whole':
      return 'whole model';
    case 'layer':
      return `layer ${scope.layer}`;
    case 'tensor-kind':
      return `${scope.tensorKind} tensors`;
    default: {
      const never: never = scope;
      return never;
    }
  }
}

/** The models × models cosine similarity of the task vectors over a scope (null when the scope is empty). */
export function cosineMatrix(r: AnalysisResult, scope: CosineScope): MatrixData | null {
  const g = scopeGroup(r, scope);
  if (!g || g.tensors === 0) return null;
  const names = shortNames(r.models);
  return {
    title: `Cosine similarity of task vectors, ${scopeLabel(scope)}`,
    rowLabels: names,
    columnLabels: names,
    values: [...g.cosine],
    unit: 'cosine (−1 opposite … 1 same direction)',
  };
}

/** Cosine similarity of each pair of models in each layer: rows are the pairs, columns the layers (null without layers or pairs). */
export function cosineByLayer(r: AnalysisResult): MatrixData | null {
  const m = r.modelStats;
  const n = r.models.length;
  if (!m || n < 2 || r.numLayers === 0) return null;
  const names = shortNames(r.models);
  const pairs: [number, number][] = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) pairs.push([i, j]);
  return {
    title: 'Cosine similarity of task vectors per layer, by pair of models',
    rowLabels: pairs.map(([i, j]) => `${names[i]} × ${names[j]}`),
    columnLabels: m.layers.map((_, k) => String(k)),
    values: pairs.flatMap(([i, j]) => m.layers.map((g) => (g.tensors > 0 ? g.cosine[i * n + j] : null))),
    unit: 'cosine (−1 opposite … 1 same direction)',
  };
}

/** Metrics shown per layer and model. */
export const LAYER_METRICS = ['norm', 'relativeChange', 'conflict', 'keptFraction', 'conflictAfterTrim', 'share'] as const;
export type LayerMetric = (typeof LAYER_METRICS)[number];

export const LAYER_METRIC_INFO: Record<LayerMetric, { label: string; unit: string; axis: string; recipe: boolean; fraction: boolean }> = {
  norm: { label: 'Task-vector norm ‖δ‖', unit: 'L2 norm of the weight change', axis: '‖δ‖', recipe: false, fraction: false },
  relativeChange: { label: 'Relative change ‖δ‖ / ‖base‖', unit: 'ratio of L2 norms, as a percentage', axis: '‖δ‖/‖base‖ (%)', recipe: false, fraction: true },
  conflict: {
    label: 'Sign-conflict rate',
    unit: 'share of parameters where the model’s sign differs from another’s (mean over the others)',
    axis: '% of parameters',
    recipe: false,
    fraction: true,
  },
  keptFraction: { label: 'Kept fraction', unit: 'share of parameters the method keeps', axis: '% of parameters', recipe: true, fraction: true },
  conflictAfterTrim: {
    label: 'Sign-conflict rate after trimming',
    unit: 'share of parameters, kept entries only (mean over the other models)',
    axis: '% of parameters',
    recipe: true,
    fraction: true,
  },
  share: { label: 'Share of the merged delta', unit: '‖contribution‖ / Σ ‖contributions‖, as a percentage', axis: '% of the merged delta', recipe: true, fraction: true },
};

export interface LayerSeries {
  /** What is shown, for test ids and file names: a metric, or `coefficient.<param>`. */
  key: string;
  title: string;
  unit: string;
  /** Short label of the value axis. */
  axis: string;
  /** 0..numLayers−1. */
  layers: number[];
  /** One series per model (recipe order), plus "all models" for the conflict metrics. */
  series: { label: string; values: (number | null)[] }[];
}

/**
 * Mean pairwise conflict of model i with the others: Σ_j≠i conflict(i, j) / (N − 1). A model's
 * "conflict rate" in the layer × model views (0 for a single model).
 */
function perModelConflict(pair: readonly number[], n: number): number[] {
  return Array.from({ length: n }, (_, i) => {
    if (n < 2) return 0;
    let s = 0;
    for (let j = 0; j < n; j++) if (j !== i) s += pair[i * n + j];
    return s / (n - 1);
  });
}

function modelMetric(g: ModelGroupStats | undefined, metric: LayerMetric, n: number): (number | null)[] {
  if (!g || g.tensors === 0) return new Array(n).fill(null);
  switch (metric) {
    case 'norm':
      return [...g.norms];
    case 'relativeChange':
      return g.relativeChange ? [...g.relativeChange] : new Array(n).fill(null);
    case 'conflict':
      return perModelConflict(g.pairConflict, n);
    default:
      return new Array(n).fill(null);
  }
}

function recipeMetric(g: RecipeGroupStats | undefined, metric: LayerMetric, n: number): (number | null)[] {
  const none = new Array<number | null>(n).fill(null);
  if (!g || g.tensors === 0) return none;
  switch (metric) {
    case 'keptFraction':
      return g.keptFraction ? [...g.keptFraction] : none;
    case 'conflictAfterTrim':
      return g.pairConflict ? perModelConflict(g.pairConflict, n) : none;
    case 'share':
      return g.share ? [...g.share] : none;
    default:
      return none;
  }
}

/** A metric per layer and model (null where it does not apply: no base, a method outside the family). */
export function layerSeries(r: AnalysisResult, metric: LayerMetric): LayerSeries {
  const info = LAYER_METRIC_INFO[metric];
  const n = r.models.length;
  const names = shortNames(r.models);
  const layers = Array.from({ length: r.numLayers }, (_, k) => k);
  const perLayer = layers.map((k) =>
    info.recipe ? recipeMetric(r.recipeStats?.layers[k], metric, n) : modelMetric(r.modelStats?.layers[k], metric, n),
  );
  const series = names.map((label, i) => ({ label, values: perLayer.map((v) => v[i]) }));
  if (metric === 'conflict' && r.modelStats && n > 1) {
    series.push({ label: 'all models', values: layers.map((k) => (r.modelStats!.layers[k]?.tensors ? r.modelStats!.layers[k].conflictAll : null)) });
  }
  if (metric === 'conflictAfterTrim' && r.recipeStats && n > 1) {
    series.push({ label: 'all models', values: layers.map((k) => r.recipeStats!.layers[k]?.conflictAll ?? null) });
  }
  const method = r.recipeStats ? ` (${r.recipeStats.method})` : '';
  return { key: metric, title: `${info.label} per layer${info.recipe ? method : ''}`, unit: info.unit, axis: info.axis, layers, series };
}

/** The few numbers shown beside the sliders: what the method keeps of each model, each model's part of the merge, per layer. */
export interface LiveSummary {
  method: string;
  /** Share of parameters where kept entries of two models have opposite signs (all models), null outside the family. */
  conflictAfterTrim: number | null;
  perModel: Map<
    string,
    {
      kept: number | null;
      share: number | null;
      /** Mean, over the other models, of the share of parameters in conflict after trimming. */
      conflict: number | null;
      shareByLayer: (number | null)[];
    }
  >;
}

/** The live summary of a result, by model reference (null without recipe statistics). */
export function liveSummary(r: AnalysisResult): LiveSummary | null {
  const rs = r.recipeStats;
  if (!rs) return null;
  const n = r.models.length;
  const conflict = rs.whole.pairConflict ? perModelConflict(rs.whole.pairConflict, n) : null;
  const perModel: LiveSummary['perModel'] = new Map();
  r.models.forEach((ref, i) => {
    perModel.set(ref, {
      kept: rs.whole.keptFraction?.[i] ?? null,
      share: rs.whole.share?.[i] ?? null,
      conflict: n > 1 ? (conflict?.[i] ?? null) : null,
      shareByLayer: rs.layers.map((g) => (g.tensors > 0 ? (g.share?.[i] ?? null) : null)),
    });
  });
  return { method: rs.method, conflictAfterTrim: rs.whole.conflictAll, perModel };
}

/** A layer × model series as a matrix: rows are the series, columns the layers. */
export function seriesMatrix(d: LayerSeries): MatrixData {
  return {
    title: d.title,
    rowLabels: d.series.map((s) => s.label),
    columnLabels: d.layers.map(String),
    values: d.series.flatMap((s) => s.values),
    unit: d.unit,
  };
}

/** Effective value of a per-model parameter per layer (the middle of its range when filters make it vary). */
export function coefficientSeries(r: AnalysisResult, param: string): LayerSeries | null {
  const c = r.recipeStats?.coefficients;
  if (!c || !c.layers.some((l) => l.perModel.some((p) => p[param]))) return null;
  const names = shortNames(r.models);
  const layers = c.layers.map((_, k) => k);
  return {
    key: `coefficient.${param}`,
    title: `Effective ${param} per layer (${r.recipeStats!.method})`,
    unit: `the ${param} each model gets at each layer (gradients and filters resolved; the middle of the range where filters differ)`,
    axis: param,
    layers,
    series: names.map((label, i) => ({
      label,
      values: c.layers.map((l) => {
        const v = l.perModel[i]?.[param];
        return v ? (v.min + v.max) / 2 : null;
      }),
    })),
  };
}

export interface HistogramData {
  title: string;
  /** Bins drawn on the log axis: regular bins only, lower and upper edge each. */
  bins: { lo: number; hi: number }[];
  /** Counts per model, aligned with `bins`. */
  counts: { label: string; values: number[] }[];
  /** The same for the entries the method keeps (null when it keeps everything or is outside the family). */
  keptCounts: { label: string; values: number[] }[] | null;
  /** Counts outside the drawn bins, per model: exact zeros, below the first edge, at/above the last, Inf/NaN. */
  outside: { label: string; zero: number; below: number; above: number; nonFinite: number }[];
  /** Per model, one tensor only: the smallest / largest kept |δ| where the method drops entries below / above it. */
  thresholds: { label: string; lo: number | null; hi: number | null }[] | null;
}

/** |δ| histograms of one tensor, or of every tensor pooled (`tensor` null). */
export function histogramData(r: AnalysisResult, tensor: string | null): HistogramData | null {
  const m = r.modelStats;
  if (!m) return null;
  const names = shortNames(r.models);
  const edges = r.histogram.edges;
  const bins = edges.slice(0, -1).map((lo, k) => ({ lo, hi: edges[k + 1] }));
  const regular = (counts: readonly number[]) => counts.slice(BIN.firstRegular, BIN.firstRegular + bins.length);
  let raw: number[][];
  let kept: number[][] | null;
  let thresholds: HistogramData['thresholds'] = null;
  if (tensor === null) {
    raw = m.pooledHistograms;
    kept = r.recipeStats?.pooledKeptHistograms ?? null;
  } else {
    const t = m.tensors.find((x) => x.name === tensor);
    if (!t) return null;
    raw = t.histograms.map((h) => h.counts);
    const rt = r.recipeStats?.tensors.find((x) => x.name === tensor);
    kept = rt?.keptHistograms?.map((h) => h.counts) ?? null;
    // Magnitude sparsifiers cut at thresholds: the smallest kept |δ| (top-k, bands) and the largest
    // (bands that drop outliers), where the kept range is narrower than the task vector's.
    const ranked = r.recipeStats?.sparsifier === 'magnitude' || r.recipeStats?.sparsifier === 'band';
    if (rt?.keptHistograms && ranked) {
      thresholds = rt.keptHistograms.map((h, i) => {
        const all = t.histograms[i];
        return {
          label: names[i],
          lo: h.minNonzero !== null && all.minNonzero !== null && h.minNonzero > all.minNonzero ? h.minNonzero : null,
          hi: h.max !== null && all.max !== null && h.max < all.max ? h.max : null,
        };
      });
    }
  }
  const what = tensor ?? 'all tensors';
  return {
    title: `Magnitude of task-vector entries |δ|, ${what}`,
    bins,
    counts: raw.map((c, i) => ({ label: names[i], values: regular(c) })),
    keptCounts: kept ? kept.map((c, i) => ({ label: names[i], values: regular(c) })) : null,
    outside: raw.map((c, i) => ({
      label: names[i],
      zero: c[BIN.zero],
      below: c[BIN.below],
      above: c[BIN.above],
      nonFinite: c[BIN.nonFinite],
    })),
    thresholds,
  };
}

// ---- CSV (RFC 4180: fields with commas, quotes or newlines are quoted) ----

function field(v: string | number | null): string {
  if (v === null) return '';
  const s = typeof v === 'number' ? String(v) : v;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function toCsv(rows: readonly (readonly (string | number | null)[])[]): string {
  return rows.map((r) => r.map(field).join(',')).join('\r\n') + '\r\n';
}

export function matrixCsv(d: MatrixData): string {
  const rows: (string | number | null)[][] = [['', ...d.columnLabels]];
  d.rowLabels.forEach((label, i) => rows.push([label, ...d.values.slice(i * d.columnLabels.length, (i + 1) * d.columnLabels.length)]));
  return toCsv(rows);
}

export function layerCsv(d: LayerSeries): string {
  const rows: (string | number | null)[][] = [['layer', ...d.series.map((s) => s.label)]];
  d.layers.forEach((layer, k) => rows.push([layer, ...d.series.map((s) => s.values[k])]));
  return toCsv(rows);
}

export function histogramCsv(d: HistogramData): string {
  const header = ['bin_lo', 'bin_hi', ...d.counts.map((c) => c.label)];
  if (d.keptCounts) header.push(...d.keptCounts.map((c) => `${c.label} kept`));
  const rows: (string | number | null)[][] = [header];
  d.bins.forEach((b, k) => {
    const row: (string | number | null)[] = [b.lo, b.hi, ...d.counts.map((c) => c.values[k])];
    if (d.keptCounts) row.push(...d.keptCounts.map((c) => c.values[k]));
    rows.push(row);
  });
  return toCsv(rows);
}

/** File-name-safe slug of a chart title. */
export function slug(title: string): string {
  return (
    title
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-|-$/g, '')
      .slice(0, 80) || 'chart'
  );
}

/**
 * Per-layer merge coefficients for the model card: the numeric parameters each model (and the merge
 * as a whole) gets at each layer, resolved as the engine resolves them (gradients over depth,
 * `{filter, value}` conditions, method defaults), over the tensors the merged model actually has, and
 * drawn as a small SVG chart (one panel per parameter, one line per model; a band where tensors of one
 * layer get different values). Pure: the same recipe gives the same bytes in Node and in the browser.
 */
import type { MethodSchema } from '../params.ts';
import { layerIndexOf, resolveTensorParams } from '../recipe/resolve.ts';
import type { Recipe } from '../recipe/types.ts';

export interface CoefficientSeries {
  /** Parameter name. */
  param: string;
  /** The model it applies to, or null for a global parameter. */
  model: string | null;
  /** Per layer: smallest and largest value over that layer's tensors. */
  layers: { min: number; max: number }[];
}

/**
 * Every numeric parameter's per-layer range, for the recipe's non-base models and the global
 * parameters. Parameters with no value anywhere are left out; a layer without tensors has no value
 * (NaN: a gap in the chart).
 */
export function layerCoefficients(recipe: Recipe, method: MethodSchema, tensorNames: readonly string[], numLayers: number): CoefficientSeries[] {
  const byLayer: string[][] = Array.from({ length: numLayers }, () => []);
  for (const name of tensorNames) {
    const k = layerIndexOf(name);
    if (k !== undefined && k < numLayers) byLayer[k].push(name);
  }
  const numeric = (specs: MethodSchema['params']) => specs.filter((s) => s.kind === 'number' || s.kind === 'integer').map((s) => s.name);
  const globals = numeric(method.params);
  const perModel = numeric(method.perModelParams);
  const series = new Map<string, CoefficientSeries>();
  const note = (param: string, model: string | null, layer: number, value: unknown) => {
    if (typeof value !== 'number') return;
    const key = `${model ?? ''}\0${param}`;
    let s = series.get(key);
    if (!s) {
      s = { param, model, layers: Array.from({ length: numLayers }, () => ({ min: NaN, max: NaN })) };
      series.set(key, s);
    }
    const r = s.layers[layer];
    r.min = Number.isNaN(r.min) ? value : Math.min(r.min, value);
    r.max = Number.isNaN(r.max) ? value : Math.max(r.max, value);
  };
  for (let k = 0; k < numLayers; k++) {
    for (const name of byLayer[k]) {
      const p = resolveTensorParams(recipe, method, name, numLayers);
      for (const g of globals) note(g, null, k, p.global[g]);
      recipe.models.forEach((m, i) => {
        if (m.model === recipe.baseModel) return;
        for (const name2 of perModel) note(name2, m.model, k, p.perModel[i][name2]);
      });
    }
  }
  // Parameters first by the method's order, models in recipe order.
  const order = [...globals, ...perModel];
  return [...series.values()].sort((a, b) => order.indexOf(a.param) - order.indexOf(b.param));
}

const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(3).replace(/0+$/, '').replace(/\.$/, ''));
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The series as an SVG chart: one panel per parameter, layers on x, one coloured line per model. */
export function coefficientsSvg(series: readonly CoefficientSeries[], title: string): string {
  const params = [...new Set(series.map((s) => s.param))];
  const models = [...new Set(series.map((s) => s.model))];
  const W = 720;
  const panelH = 170;
  const left = 56;
  const right = 16;
  const legendH = 18 * models.length + 8;
  const gap = 48;
  const H = 36 + params.length * (panelH + gap) + legendH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  params.forEach((param, pi) => {
    const top = 36 + pi * (panelH + gap) + 16;
    const inPanel = series.filter((s) => s.param === param);
    const values = inPanel.flatMap((s) => s.layers.flatMap((l) => [l.min, l.max])).filter((v) => !Number.isNaN(v));
    let lo = Math.min(...values);
    let hi = Math.max(...values);
    if (!(hi > lo)) {
      const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
      lo -= pad;
      hi += pad;
    }
    const n = Math.max(1, ...inPanel.map((s) => s.layers.length));
    const x = (k: number) => left + (n === 1 ? 0.5 : k / (n - 1)) * (W - left - right);
    const y = (v: number) => top + (1 - (v - lo) / (hi - lo)) * panelH;
    out.push(`<text x="${left}" y="${top - 4}" font-weight="bold">${esc(param)}</text>`);
    out.push(`<rect x="${left}" y="${top}" width="${W - left - right}" height="${panelH}" fill="none" stroke="#cccccc"/>`);
    for (const v of [lo, (lo + hi) / 2, hi]) {
      out.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#555555">${fmt(v)}</text>`);
    }
    // Layer ticks: every layer up to 12, else about 8 evenly spaced.
    const step = n <= 12 ? 1 : Math.ceil((n - 1) / 8);
    for (let k = 0; k < n; k += step) {
      out.push(`<line x1="${x(k).toFixed(1)}" y1="${top + panelH}" x2="${x(k).toFixed(1)}" y2="${top + panelH + 4}" stroke="#999999"/>`);
      out.push(`<text x="${x(k).toFixed(1)}" y="${top + panelH + 16}" text-anchor="middle" fill="#555555">${k}</text>`);
    }
    out.push(`<text x="${W - right}" y="${top + panelH + 30}" text-anchor="end" fill="#555555">layer</text>`);
    for (const s of inPanel) {
      const colour = PALETTE[models.indexOf(s.model) % PALETTE.length];
      const pts = s.layers.map((l, k) => ({ k, l })).filter((p) => !Number.isNaN(p.l.min));
      if (pts.some((p) => p.l.max > p.l.min)) {
        const upper = pts.map((p) => `${x(p.k).toFixed(1)},${y(p.l.max).toFixed(1)}`);
        const lower = [...pts].reverse().map((p) => `${x(p.k).toFixed(1)},${y(p.l.min).toFixed(1)}`);
        out.push(`<polygon points="${[...upper, ...lower].join(' ')}" fill="${colour}" fill-opacity="0.2" stroke="none"/>`);
      }
      const mid = pts.map((p) => `${x(p.k).toFixed(1)},${y((p.l.min + p.l.max) / 2).toFixed(1)}`);
      if (mid.length === 1) out.push(`<circle cx="${mid[0].split(',')[0]}" cy="${mid[0].split(',')[1]}" r="3" fill="${colour}"/>`);
      else out.push(`<polyline points="${mid.join(' ')}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    }
  });
  const legendTop = 36 + params.length * (panelH + gap) + 4;
  models.forEach((m, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const yy = legendTop + i * 18;
    out.push(`<rect x="${left}" y="${yy}" width="12" height="12" fill="${colour}"/>`);
    out.push(`<text x="${left + 18}" y="${yy + 10}">${esc(m ?? 'all models (global parameter)')}</text>`);
  });
  out.push('</svg>', '');
  return out.join('\n');
}

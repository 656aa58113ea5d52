/**
 * Per-layer curves: what the curve editor edits and how it becomes a recipe gradient list.
 *
 * A curve is a piecewise-linear function over depth t ∈ [0, 1] (t = k/(L−1) for layer k of L, the
 * same position the engine gives a tensor of `model.layers.<k>.`), set by control points the user drags.
 * A recipe gradient `[v0..vn−1]` is such a curve with n evenly spaced points, so evenly spaced curves
 * are written as their values; any other curve is sampled once per layer, which the engine's
 * interpolation then reproduces exactly at every layer (tensors outside the layers use t = 0).
 */

export interface CurvePoint {
  /** Depth in [0, 1]: 0 is the first layer, 1 the last. */
  t: number;
  value: number;
}

/** Points closer than this in t count as the same place (even-spacing test, neighbour clamping). */
const T_EPS = 1e-9;

/** The control points of a gradient list: n values at t = i/(n−1); one value is a flat curve. */
export function gradientToCurve(values: readonly number[]): CurvePoint[] {
  if (values.length === 0) throw new RangeError('a gradient needs at least one value');
  if (values.length === 1) return [{ t: 0, value: values[0] }, { t: 1, value: values[0] }];
  return values.map((value, i) => ({ t: i / (values.length - 1), value }));
}

/** The curve's value at t (clamped to the ends), linear between neighbouring points. */
export function evalCurve(points: readonly CurvePoint[], t: number): number {
  if (points.length === 0) throw new RangeError('a curve needs at least one point');
  if (t <= points[0].t) return points[0].value;
  const last = points[points.length - 1];
  if (t >= last.t) return last.value;
  let i = 1;
  while (points[i].t < t) i++;
  const a = points[i - 1];
  const b = points[i];
  const span = b.t - a.t;
  if (span <= T_EPS) return b.value;
  const f = (t - a.t) / span;
  return a.value + f * (b.value - a.value);
}

/** True when the points sit at i/(n−1), i.e. the curve is exactly the gradient of its values. */
export function isEvenlySpaced(points: readonly CurvePoint[]): boolean {
  if (points.length < 2) return false;
  return points.every((p, i) => Math.abs(p.t - i / (points.length - 1)) < T_EPS);
}

/** Depth of layer k in a model of `numLayers` layers, as the engine computes it. */
export function layerT(k: number, numLayers: number): number {
  return numLayers <= 1 ? 1 : k / (numLayers - 1);
}

/**
 * The gradient list for a curve over a model of `numLayers` layers: the point values when evenly
 * spaced (the shortest exact form), else one sample per layer. Values are rounded to 6 decimals,
 * far below any parameter's meaningful precision, to keep the YAML readable.
 */
export function curveToGradient(points: readonly CurvePoint[], numLayers: number): number[] {
  if (points.length === 0) throw new RangeError('a curve needs at least one point');
  if (isEvenlySpaced(points)) return points.map((p) => roundValue(p.value));
  if (!Number.isInteger(numLayers) || numLayers < 1) throw new RangeError(`numLayers must be a positive integer, got ${numLayers}`);
  const samples: number[] = [];
  for (let k = 0; k < numLayers; k++) samples.push(roundValue(evalCurve(points, layerT(k, numLayers))));
  return samples;
}

export function roundValue(v: number): number {
  const r = Math.round(v * 1e6) / 1e6;
  return Object.is(r, -0) ? 0 : r;
}

export interface ValueBounds {
  min: number;
  max: number;
}

/**
 * Move point `index` to (t, value): the end points keep t = 0 and t = 1, inner points stay strictly
 * between their neighbours (so the order never changes), values stay within bounds.
 */
export function movePoint(
  points: readonly CurvePoint[],
  index: number,
  to: Partial<CurvePoint>,
  bounds: ValueBounds,
): CurvePoint[] {
  const p = points[index];
  if (p === undefined) throw new RangeError(`no point ${index} on a curve of ${points.length}`);
  const last = points.length - 1;
  let t = to.t ?? p.t;
  if (index === 0) t = 0;
  else if (index === last) t = 1;
  else t = clamp(t, points[index - 1].t + 1e-6, points[index + 1].t - 1e-6);
  const value = clamp(to.value ?? p.value, bounds.min, bounds.max);
  return points.map((q, i) => (i === index ? { t, value } : q));
}

/** Add a point at t on the curve (its value is the curve's value there). Returns the new list and its index. */
export function insertPoint(points: readonly CurvePoint[], t: number): { points: CurvePoint[]; index: number } {
  const tc = clamp(t, 0, 1);
  let index = points.findIndex((p) => p.t > tc);
  if (index <= 0) index = index === 0 ? 1 : points.length - 1;
  if (Math.abs(points[index - 1].t - tc) < 1e-6 || Math.abs(points[index].t - tc) < 1e-6) {
    return { points: [...points], index: Math.abs(points[index - 1].t - tc) < 1e-6 ? index - 1 : index };
  }
  const point = { t: tc, value: roundValue(evalCurve(points, tc)) };
  return { points: [...points.slice(0, index), point, ...points.slice(index)], index };
}

/** Remove an inner point (the two ends always stay). */
export function removePoint(points: readonly CurvePoint[], index: number): CurvePoint[] {
  if (index <= 0 || index >= points.length - 1) return [...points];
  return points.filter((_, i) => i !== index);
}

/** Spread n points evenly over the current curve (used by the "points" control). */
export function resample(points: readonly CurvePoint[], n: number): CurvePoint[] {
  const count = Math.max(2, Math.floor(n));
  return Array.from({ length: count }, (_, i) => {
    const t = i / (count - 1);
    return { t, value: roundValue(evalCurve(points, t)) };
  });
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(Math.max(v, lo), hi);
}

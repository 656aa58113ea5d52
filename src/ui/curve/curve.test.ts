import { describe, expect, it } from 'vitest';
import { evalGradient } from '../../core/recipe/resolve.ts';
import {
  curveToGradient,
  evalCurve,
  gradientToCurve,
  insertPoint,
  isEvenlySpaced,
  layerT,
  movePoint,
  removePoint,
  resample,
  type CurvePoint,
} from './curve.ts';

const BOUNDS = { min: 0, max: 1 };

describe('curve → gradient', () => {
  it('writes an evenly spaced curve as its values', () => {
    expect(curveToGradient(gradientToCurve([1, 0.7, 0.1]), 4)).toEqual([1, 0.7, 0.1]);
    expect(curveToGradient(gradientToCurve([0.25]), 4)).toEqual([0.25, 0.25]);
  });

  it('samples an uneven curve once per layer (hand-computed values)', () => {
    // 0 at t=0, 1 at t=0.25, 0 at t=1; a model of 5 layers sits at t = 0, .25, .5, .75, 1.
    const points: CurvePoint[] = [
      { t: 0, value: 0 },
      { t: 0.25, value: 1 },
      { t: 1, value: 0 },
    ];
    expect(curveToGradient(points, 5)).toEqual([0, 1, 2 / 3, 1 / 3, 0].map((v) => Math.round(v * 1e6) / 1e6));
  });

  it('the engine reads back the curve at every layer (checked with the engine resolver)', () => {
    const points: CurvePoint[] = [
      { t: 0, value: 0.2 },
      { t: 0.13, value: 0.9 },
      { t: 0.61, value: 0.35 },
      { t: 1, value: 0.6 },
    ];
    for (const layers of [1, 2, 3, 4, 7, 32]) {
      const gradient = curveToGradient(points, layers);
      for (let k = 0; k < layers; k++) {
        const t = layerT(k, layers);
        expect(evalGradient(gradient, t)).toBeCloseTo(evalCurve(points, t), 6);
      }
    }
  });

  it('evaluates curves linearly between points and flat outside', () => {
    const points: CurvePoint[] = [
      { t: 0, value: 1 },
      { t: 0.5, value: 0 },
      { t: 1, value: 0.5 },
    ];
    expect(evalCurve(points, 0.25)).toBeCloseTo(0.5, 12);
    expect(evalCurve(points, 0.75)).toBeCloseTo(0.25, 12);
    expect(evalCurve(points, -1)).toBe(1);
    expect(evalCurve(points, 2)).toBe(0.5);
  });

  it('spaces gradient points at i/(n−1), as the engine does', () => {
    expect(gradientToCurve([3, 2, 1]).map((p) => p.t)).toEqual([0, 0.5, 1]);
    expect(isEvenlySpaced(gradientToCurve([1, 2, 3, 4]))).toBe(true);
    expect(isEvenlySpaced([{ t: 0, value: 0 }, { t: 0.4, value: 0 }, { t: 1, value: 0 }])).toBe(false);
  });
});

describe('editing points', () => {
  const curve = gradientToCurve([0.2, 0.4, 0.6]);

  it('keeps the ends at t = 0 and 1 and inner points between their neighbours', () => {
    expect(movePoint(curve, 0, { t: 0.3, value: 0.9 }, BOUNDS)[0]).toEqual({ t: 0, value: 0.9 });
    expect(movePoint(curve, 2, { t: 0.1 }, BOUNDS)[2].t).toBe(1);
    const moved = movePoint(curve, 1, { t: 2 }, BOUNDS)[1];
    expect(moved.t).toBeLessThan(1);
    expect(moved.t).toBeGreaterThan(0.99);
  });

  it('clamps values to the parameter range', () => {
    expect(movePoint(curve, 1, { value: 7 }, BOUNDS)[1].value).toBe(1);
    expect(movePoint(curve, 1, { value: -7 }, BOUNDS)[1].value).toBe(0);
  });

  it('inserts a point on the curve and removes inner points only', () => {
    const { points, index } = insertPoint(curve, 0.25);
    expect(index).toBe(1);
    expect(points[1]).toEqual({ t: 0.25, value: 0.3 });
    expect(points).toHaveLength(4);
    expect(removePoint(points, 1)).toEqual(curve);
    expect(removePoint(points, 0)).toEqual(points);
    expect(removePoint(points, 3)).toEqual(points);
  });

  it('resamples to n evenly spaced points on the same curve', () => {
    expect(resample(gradientToCurve([0, 1]), 5).map((p) => p.value)).toEqual([0, 0.25, 0.5, 0.75, 1]);
  });
});

/**
 * Every GPU backend op against the CPU reference (src/gpu/cpu-backend.ts), at odd sizes and with
 * tensors split into several chunks. Tolerances are stated per op; "exact" means bit-identical.
 * One device for the whole file (software adapter: keep tensors small).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashTensorName, uniformAt, type MaskKey, type Tensor } from './backend.ts';
import { GpuContext } from './context.ts';
import { CpuBackend } from './cpu-backend.ts';
import { chunkLayout, createGpuBackend, GpuBackendError, type GpuBackend } from './gpu-backend.ts';
import { nodeGpu } from './node-gpu.ts';
import { seeded } from '../../tests/helpers/seeded.ts';

const LENGTHS = [1, 7, 255, 257, 1000, 4099, 65537];
/** undefined: one chunk per tensor; 777 and 1000 cut most tensors into many chunks. */
const CHUNKINGS = [undefined, 777] as const;
/** 2-D shapes: rows inside chunks, rows spanning chunks (1000, 4099 > 777), a single row. */
const SHAPES_2D: number[][] = [
  [15, 17],
  [8, 125],
  [40, 1000],
  [3, 4099],
  [1, 257],
];

let ctx: GpuContext;
const backends = new Map<number | undefined, GpuBackend>();
const cpu = new CpuBackend();

beforeAll(async () => {
  ctx = await GpuContext.create(nodeGpu());
  for (const c of [undefined, 777, 1000]) backends.set(c, createGpuBackend(ctx, { maxChunkElements: c }));
});

afterAll(() => {
  for (const b of backends.values()) b.destroy();
  ctx?.destroy();
});

function gpuFor(chunk: number | undefined): GpuBackend {
  return backends.get(chunk) as GpuBackend;
}

const rng = seeded;

/** Gaussian-ish values with a sprinkling of zeros and negative zeros. */
function randomValues(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    if (u < 0.02) out[i] = 0;
    else if (u < 0.03) out[i] = -0;
    else out[i] = (r() + r() + r() - 1.5) * 2 * scale;
  }
  return out;
}

/** Values from a small set: many ties in magnitude (no zeros, so kept counts are visible). */
function tiedValues(n: number, seed: number): Float32Array {
  const set = [0.5, -0.5, 1, -1, 2, -2, 3, 0.25, -4];
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => set[Math.floor(r() * set.length)]);
}

async function pair(chunk: number | undefined, values: Float32Array, shape: number[]): Promise<[Tensor, Tensor]> {
  return [await gpuFor(chunk).fromArray(values, shape), cpu.fromArray(values, shape)];
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** Bit-identical, with the first differing index in the failure message. */
function expectSameBits(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length, what).toBe(want.length);
  const g = bits(got);
  const w = bits(want);
  for (let i = 0; i < g.length; i++) {
    if (g[i] !== w[i]) {
      expect.fail(`${what}: element ${i}: got ${got[i]} (0x${g[i].toString(16)}), want ${want[i]} (0x${w[i].toString(16)})`);
    }
  }
}

/** |got - want| <= bound(i) for every element, naming the first that is not. */
function expectClose(got: Float32Array, want: Float32Array, bound: (i: number) => number, what: string): void {
  expect(got.length, what).toBe(want.length);
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= bound(i)) && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) {
      expect.fail(`${what}: element ${i}: got ${got[i]}, want ${want[i]}, |diff| ${d} > ${bound(i)}`);
    }
  }
}

const F32_EPS = 2 ** -23;

function release(...ts: Tensor[]): void {
  for (const t of ts) {
    for (const b of backends.values()) b.release(t);
    cpu.release(t);
  }
}

describe('chunk layout', () => {
  it('cuts on row boundaries when a row fits, else at the capacity', () => {
    expect(chunkLayout([40, 1000], 777)).toMatchObject({ rows: 40, rowLen: 1000, chunkLen: 777, count: 52 });
    expect(chunkLayout([15, 17], 100)).toMatchObject({ rowLen: 17, chunkLen: 85, count: 3 });
    expect(chunkLayout([65537], 777)).toMatchObject({ rows: 1, chunkLen: 777, count: 85 });
    expect(chunkLayout([0, 5], 777)).toMatchObject({ numel: 0, count: 0 });
  });
});

describe('read / decode F32 round trip', () => {
  it('returns the uploaded values at every length and chunking', async () => {
    for (const chunk of [undefined, 777, 1000]) {
      for (const n of LENGTHS) {
        const values = randomValues(n, n);
        const t = await gpuFor(chunk).fromArray(values, [n]);
        expectSameBits(await gpuFor(chunk).read(t), values, `n=${n} chunk=${chunk}`);
        gpuFor(chunk).release(t);
      }
    }
  });
});

describe('decode / encode vs CPU (exact)', () => {
  it('BF16 / F16 / F32 at every length and chunking', async () => {
    for (const chunk of CHUNKINGS) {
      const gpu = gpuFor(chunk);
      for (const n of LENGTHS) {
        // Wide range: rounding, F16 overflow to Inf and F16 subnormals all occur.
        const values = randomValues(n, 11 * n, 1).map((v, i) => v * 2 ** ((i % 41) - 20));
        const [g, c] = await pair(chunk, values, [n]);
        for (const dtype of ['BF16', 'F16', 'F32'] as const) {
          const what = `${dtype} n=${n} chunk=${chunk}`;
          const bytes = await gpu.encode(g, dtype);
          expect(Array.from(bytes), `encode ${what}`).toEqual(Array.from(await cpu.encode(c, dtype)));
          const dg = await gpu.decode(bytes, dtype, [n]);
          const dc = await cpu.decode(bytes, dtype, [n]);
          expectSameBits(await gpu.read(dg), await cpu.read(dc), `decode ${what}`);
          release(dg, dc);
        }
        release(g, c);
      }
    }
  });

  it('decodes a tensor whose chunks start at odd elements (2-byte values straddling words)', async () => {
    const gpu = gpuFor(777);
    const shape = [3, 4099];
    const values = randomValues(numel(shape), 5);
    for (const dtype of ['BF16', 'F16'] as const) {
      const bytes = await cpu.encode(cpu.fromArray(values, shape), dtype);
      const t = await gpu.decode(bytes, dtype, shape);
      expectSameBits(await gpu.read(t), await cpu.read(await cpu.decode(bytes, dtype, shape)), dtype);
      gpu.release(t);
    }
  });
});

describe('lincomb vs CPU', () => {
  // Same f32 order as the CPU; a GPU may fuse multiply-adds, so allow 4 ulp of Σ|c·x| + |bias|.
  it('1 to 9 terms, scalar and per-row coefficients, bias, every chunking', async () => {
    const cases: { shape: number[]; terms: number; perRow: boolean; bias: number }[] = [
      ...LENGTHS.map((n, i) => ({ shape: [n], terms: (i % 5) + 1, perRow: false, bias: i % 2 ? 0.25 : 0 })),
      ...SHAPES_2D.map((shape, i) => ({ shape, terms: [2, 5, 9, 3, 6][i], perRow: true, bias: -1.5 })),
    ];
    for (const chunk of [undefined, 777, 1000]) {
      const gpu = gpuFor(chunk);
      for (const { shape, terms, perRow, bias } of cases) {
        const n = numel(shape);
        const rows = shape.length >= 2 ? shape[0] : 1;
        const r = rng(n + terms);
        const xs = await Promise.all(
          Array.from({ length: terms }, (_, k) => pair(chunk, randomValues(n, 100 * k + n), shape)),
        );
        const coefs = xs.map((_, k) =>
          perRow && k % 2 === 0 ? Float32Array.from({ length: rows }, () => r() * 4 - 2) : r() * 4 - 2,
        );
        const got = await gpu.read(await gpu.lincomb(xs.map(([g], k) => ({ x: g, coef: coefs[k] })), bias));
        const cpuOut = await cpu.lincomb(xs.map(([, c], k) => ({ x: c, coef: coefs[k] })), bias);
        const want = await cpu.read(cpuOut);
        const data = await Promise.all(xs.map(([, c]) => cpu.read(c)));
        const rowLen = n / rows;
        const bound = (i: number) => {
          let s = Math.abs(bias);
          const row = Math.floor(i / rowLen);
          coefs.forEach((c, k) => (s += Math.abs((typeof c === 'number' ? Math.fround(c) : c[row]) * data[k][i])));
          return 4 * F32_EPS * s;
        };
        expectClose(got, want, bound, `lincomb shape=[${shape}] terms=${terms} chunk=${chunk}`);
        release(cpuOut, ...xs.flat());
      }
    }
  });

  it('matches the CPU exactly on the f32 cancellation example', async () => {
    const gpu = gpuFor(undefined);
    const one = await gpu.fromArray([1], [1]);
    const r = await gpu.lincomb([
      { x: one, coef: 1e8 },
      { x: one, coef: 1 },
      { x: one, coef: -1e8 },
    ]);
    expect(Array.from(await gpu.read(r))).toEqual([0]);
    gpu.release(r);
    gpu.release(one);
  });
});

// Hardware adapters sum 4096 elements per workgroup, software ones 65536 (fewer barriers): test both.
describe.each([
  [4096, 1e-5],
  [65536, 4e-5],
])('reductions vs CPU (f32 block sums of %d, combined in f64)', (reduceBlock, tol) => {
  // Tolerance: tol · Σ|a_i·b_i| (the f32 rounding of sums over at most reduceBlock terms).
  it('gram, gramRows, sumAbs over 1-D and 2-D tensors, every chunking', async () => {
    const shapes = [...LENGTHS.map((n) => [n]), ...SHAPES_2D];
    for (const chunk of CHUNKINGS) {
      const gpu = createGpuBackend(ctx, { maxChunkElements: chunk, reduceBlock });
      for (const shape of shapes) {
        const n = numel(shape);
        const xs = await Promise.all(
          [0, 1, 2].map(async (k): Promise<[Tensor, Tensor]> => {
            const v = randomValues(n, 7 * k + n, k + 1);
            return [await gpu.fromArray(v, shape), cpu.fromArray(v, shape)];
          }),
        );
        const data = await Promise.all(xs.map(([, c]) => cpu.read(c)));
        const rows = shape.length >= 2 ? shape[0] : 1;
        const rowLen = n / rows;
        const what = `shape=[${shape}] chunk=${chunk}`;

        const g = await gpu.gram(xs.map(([t]) => t));
        const w = await cpu.gram(xs.map(([, t]) => t));
        for (let i = 0; i < 3; i++) {
          for (let j = 0; j < 3; j++) {
            let absSum = 0;
            for (let e = 0; e < n; e++) absSum += Math.abs(data[i][e] * data[j][e]);
            expect(Math.abs(g[i * 3 + j] - w[i * 3 + j]), `gram ${what} (${i},${j})`).toBeLessThanOrEqual(tol * absSum + 1e-30);
          }
        }

        const gr = await gpu.gramRows(xs.map(([t]) => t));
        const wr = await cpu.gramRows(xs.map(([, t]) => t));
        expect(gr.length).toBe(rows * 9);
        for (let r = 0; r < rows; r++) {
          for (let i = 0; i < 3; i++) {
            for (let j = 0; j < 3; j++) {
              let absSum = 0;
              for (let e = r * rowLen; e < (r + 1) * rowLen; e++) absSum += Math.abs(data[i][e] * data[j][e]);
              const k = r * 9 + i * 3 + j;
              expect(Math.abs(gr[k] - wr[k]), `gramRows ${what} row ${r} (${i},${j})`).toBeLessThanOrEqual(tol * absSum + 1e-30);
            }
          }
        }

        const s = await gpu.sumAbs(xs[1][0]);
        const sw = await cpu.sumAbs(xs[1][1]);
        expect(Math.abs(s - sw), `sumAbs ${what}`).toBeLessThanOrEqual(tol * sw);
        for (const [g, c] of xs) {
          gpu.release(g);
          cpu.release(c);
        }
      }
      gpu.destroy();
    }
  });
});

describe('keepRankBand vs CPU (exact)', () => {
  function bands(n: number): [number, number][] {
    // The largest size runs 8 histogram passes over ~85 chunks per band: test fewer bands there.
    if (n > 5000) return [[n - Math.floor(n / 3), n], [Math.floor(n / 7), n - Math.floor(n / 5)], [3, 9]];
    return [
      [0, n],
      [n - Math.max(1, Math.floor(n / 3)), n], // top-k
      [0, Math.floor(n / 2)],
      [Math.floor(n / 7), n - Math.floor(n / 5)], // breadcrumbs-like band
      [Math.floor(n / 2), Math.floor(n / 2)], // empty
      [-3, n + 10], // clamped
      [1.7, n - 0.5], // fractional bounds floor
    ];
  }

  it('keeps exactly hi - lo entries, ties broken by index, random and tied data', async () => {
    for (const chunk of CHUNKINGS) {
      const gpu = gpuFor(chunk);
      for (const n of LENGTHS) {
        for (const [kind, values] of [
          ['random', randomValues(n, 3 * n)],
          ['tied', tiedValues(n, n)],
        ] as const) {
          const [g, c] = await pair(chunk, values, [n]);
          for (const [lo, hi] of bands(n)) {
            const what = `${kind} n=${n} chunk=${chunk} band=[${lo}, ${hi})`;
            const gt = await gpu.keepRankBand(g, lo, hi);
            const ct = await cpu.keepRankBand(c, lo, hi);
            const got = await gpu.read(gt);
            expectSameBits(got, await cpu.read(ct), what);
            if (kind === 'tied') {
              const from = Math.max(0, Math.min(n, Math.floor(lo)));
              const to = Math.max(from, Math.min(n, Math.floor(hi)));
              expect(got.filter((v) => v !== 0).length, what).toBe(to - from);
            }
            release(gt, ct);
          }
          release(g, c);
        }
      }
    }
  });

  it('orders subnormals, infinities and signed zeros by magnitude', async () => {
    const gpu = gpuFor(777);
    const n = 2000;
    const values = randomValues(n, 9);
    const specials = [Infinity, -Infinity, 1e-45, -1e-45, 1e-40, 3e38, -3e38, 0, -0, 1.1754942e-38];
    specials.forEach((v, k) => (values[k * 150 + 3] = v));
    const [g, c] = await pair(777, values, [n]);
    for (const [lo, hi] of [
      [5, 1990],
      [0, 12],
      [1998, 2000],
    ]) {
      const gt = await gpu.keepRankBand(g, lo, hi);
      const ct = await cpu.keepRankBand(c, lo, hi);
      expectSameBits(await gpu.read(gt), await cpu.read(ct), `band [${lo}, ${hi})`);
      release(gt, ct);
    }
    release(g, c);
  });

  it('handles a 2-D tensor as one flat ranking', async () => {
    const shape = [40, 1000];
    const values = tiedValues(numel(shape), 77);
    const [g, c] = await pair(777, values, shape);
    const gt = await gpuFor(777).keepRankBand(g, 12345, 30001);
    const ct = await cpu.keepRankBand(c, 12345, 30001);
    expectSameBits(await gpuFor(777).read(gt), await cpu.read(ct), '[40, 1000]');
    expect(gt.shape).toEqual(shape);
    release(gt, ct, g, c);
  });
});

describe('keepRandom (exact, the same mask on every chunking)', () => {
  const key: MaskKey = { seed: 42, model: 1, tensor: 'model.layers.3.mlp.down_proj.weight' };

  it('matches the CPU for p in {0, 0.3, 0.5, 0.9, 1, 1.5}', async () => {
    for (const chunk of [undefined, 777, 1000]) {
      const gpu = gpuFor(chunk);
      for (const n of LENGTHS) {
        const [g, c] = await pair(chunk, randomValues(n, n + 5), [n]);
        for (const p of [0, 0.3, 0.5, 0.9, 1, 1.5]) {
          const gt = await gpu.keepRandom(g, p, key);
          const ct = await cpu.keepRandom(c, p, key);
          expectSameBits(await gpu.read(gt), await cpu.read(ct), `n=${n} chunk=${chunk} p=${p}`);
          release(gt, ct);
        }
        release(g, c);
      }
    }
  });

  it('keeps exactly the indices whose uniformAt is below fround(p)', async () => {
    // Independent of CpuBackend: the mask of a tensor of ones against uniformAt directly.
    const n = 65537;
    const ones = new Float32Array(n).fill(1);
    const hash = hashTensorName(key.tensor);
    for (const [chunk, p, k] of [
      [777, 0.35, key],
      [1000, 0.35, key],
      [undefined, 0.7, { ...key, model: 2 }],
      [777, 0.5, { ...key, seed: 0xfffffffe }],
    ] as const) {
      const gpu = gpuFor(chunk);
      const t = await gpu.fromArray(ones, [n]);
      const m = await gpu.keepRandom(t, p, k);
      const got = await gpu.read(m);
      const h = k.tensor === key.tensor ? hash : hashTensorName(k.tensor);
      let kept = 0;
      for (let i = 0; i < n; i++) {
        const want = uniformAt(k.seed, k.model, h, i) < Math.fround(p) ? 1 : 0;
        if (got[i] !== want) expect.fail(`chunk=${chunk} p=${p} index ${i}: got ${got[i]}, want ${want}`);
        kept += want;
      }
      // And the draw is a plausible Bernoulli(p): within 5 standard deviations.
      expect(Math.abs(kept - p * n)).toBeLessThan(5 * Math.sqrt(n * p * (1 - p)));
      gpu.release(m);
      gpu.release(t);
    }
  });

  it('draws different masks for different models, tensors and seeds', async () => {
    const gpu = gpuFor(777);
    const n = 4099;
    const t = await gpu.fromArray(new Float32Array(n).fill(1), [n]);
    const masks: Float32Array[] = [];
    for (const k of [key, { ...key, model: 0 }, { ...key, tensor: 'other' }, { ...key, seed: 43 }]) {
      const m = await gpu.keepRandom(t, 0.5, k);
      masks.push(await gpu.read(m));
      gpu.release(m);
    }
    for (let a = 0; a < masks.length; a++) {
      for (let b = a + 1; b < masks.length; b++) {
        const same = masks[a].filter((v, i) => v === masks[b][i]).length;
        expect(same / n).toBeLessThan(0.6);
      }
    }
    gpu.release(t);
  });
});

describe('keepRanked / DELLA (exact)', () => {
  // The per-rank keep thresholds are computed on the host with the CPU's f32 formula for p, so
  // the GPU mask is identical to the CPU's, with no exception near u ≈ p.
  const key: MaskKey = { seed: 7, model: 2, tensor: 'model.layers.0.self_attn.q_proj.weight' };

  it('matches the CPU on 1-D and 2-D tensors, rows inside and across chunks, with ties', async () => {
    const shapes: number[][] = [[1], [7], [255], [257], [1000], [4099], ...SHAPES_2D, [300, 7]];
    for (const chunk of CHUNKINGS) {
      const gpu = gpuFor(chunk);
      for (const shape of shapes) {
        const n = numel(shape);
        for (const [kind, values] of [
          ['random', randomValues(n, n + 1)],
          ['tied', tiedValues(n, n + 2)],
        ] as const) {
          const [g, c] = await pair(chunk, values, shape);
          for (const [density, epsilon] of [
            [0.5, 0.2],
            [0.9, 0.09],
          ]) {
            const gt = await gpu.keepRanked(g, density, epsilon, key);
            const ct = await cpu.keepRanked(c, density, epsilon, key);
            expectSameBits(await gpu.read(gt), await cpu.read(ct), `${kind} shape=[${shape}] chunk=${chunk} d=${density}`);
            release(gt, ct);
          }
          release(g, c);
        }
      }
    }
  });

  it('sorts in workgroup memory (workgroupSort) with the same result', async () => {
    // The software adapter defaults to global-memory stages only; force the tiled path here.
    for (const chunk of [undefined, 777]) {
      const gpu = createGpuBackend(ctx, { maxChunkElements: chunk, workgroupSort: true });
      for (const shape of [[1], [7], [257], [300, 7], [40, 1000], [3, 4099], [2, 16411]]) {
        const n = numel(shape);
        const values = shape[0] === 40 ? tiedValues(n, 5) : randomValues(n, n + 3);
        const g = await gpu.fromArray(values, shape);
        const c = cpu.fromArray(values, shape);
        const gt = await gpu.keepRanked(g, 0.6, 0.3, key);
        const ct = await cpu.keepRanked(c, 0.6, 0.3, key);
        expectSameBits(await gpu.read(gt), await cpu.read(ct), `shape=[${shape}] chunk=${chunk}`);
        cpu.release(ct);
        cpu.release(c);
      }
      gpu.destroy();
    }
  });

  it('ranks rows of 16k+ entries and one long row', async () => {
    for (const shape of [
      [2, 16411],
      [65537],
    ]) {
      const values = randomValues(numel(shape), 99);
      const [g, c] = await pair(undefined, values, shape);
      const gt = await gpuFor(undefined).keepRanked(g, 0.4, 0.3, key);
      const ct = await cpu.keepRanked(c, 0.4, 0.3, key);
      expectSameBits(await gpuFor(undefined).read(gt), await cpu.read(ct), `shape=[${shape}]`);
      release(gt, ct, g, c);
    }
  });

  it('keeps large magnitudes more often than small ones (p rises with rank)', async () => {
    const n = 4099;
    const values = Float32Array.from({ length: n }, (_, i) => (i % 2 ? 1 : -1) * (i + 1));
    const gpu = gpuFor(1000);
    const t = await gpu.fromArray(values, [n]);
    const m = await gpu.read(await gpu.keepRanked(t, 0.5, 0.4, key));
    const lowKept = m.slice(0, n / 4).filter((v) => v !== 0).length / (n / 4);
    const highKept = m.slice((3 * n) / 4).filter((v) => v !== 0).length / (n / 4);
    // p runs from 0.1 (smallest) to 0.9 (largest): quarter averages about 0.2 and 0.8.
    expect(lowKept).toBeLessThan(0.3);
    expect(highKept).toBeGreaterThan(0.7);
  });
});

describe('keepWhere vs CPU (exact)', () => {
  it('keeps where the mask is nonzero (NaN counts, -0 does not)', async () => {
    for (const chunk of CHUNKINGS) {
      const gpu = gpuFor(chunk);
      for (const n of LENGTHS) {
        const r = rng(n);
        const mask = Float32Array.from({ length: n }, () => {
          const u = r();
          return u < 0.4 ? 0 : u < 0.45 ? -0 : u < 0.5 ? NaN : u < 0.55 ? 1e-42 : 1;
        });
        const [g, c] = await pair(chunk, randomValues(n, n), [n]);
        const [gm, cm] = await pair(chunk, mask, [n]);
        const gt = await gpu.keepWhere(g, gm);
        const ct = await cpu.keepWhere(c, cm);
        expectSameBits(await gpu.read(gt), await cpu.read(ct), `n=${n} chunk=${chunk}`);
        release(gt, ct, g, c, gm, cm);
      }
    }
  });
});

describe('signElect vs CPU', () => {
  // Same f32 sums in the same order; the normalize division may be off by 2.5 ulp on a GPU
  // (WGSL's f32 division accuracy), so allow 4 ulp of the result.
  it('1 to 6 tensors (fused and multi-pass), normalize on and off, negative weights', async () => {
    for (const chunk of [undefined, 777]) {
      const gpu = gpuFor(chunk);
      for (const [n, count] of [
        [1, 1],
        [7, 2],
        [257, 3],
        [1000, 4],
        [4099, 5],
        [65537, 6],
      ]) {
        const weights = [1, -0.5, 2, 0.75, 1.25, 3].slice(0, count);
        const xs = await Promise.all(weights.map((_, k) => pair(chunk, randomValues(n, n * 3 + k), [n])));
        // Votes that cancel exactly: element 0 sums to 0 (majority +1 by the >= rule).
        for (const normalize of [true, false]) {
          const gt = await gpu.signElect(xs.map(([g]) => g), weights, normalize);
          const ct = await cpu.signElect(xs.map(([, c]) => c), weights, normalize);
          const want = await cpu.read(ct);
          expectClose(await gpu.read(gt), want, (i) => 4 * F32_EPS * Math.abs(want[i]), `n=${n} count=${count} normalize=${normalize} chunk=${chunk}`);
          release(gt, ct);
        }
        release(...xs.flat());
      }
    }
  });

  it('elects +1 on a tie and never counts zeros (hand-computed)', async () => {
    const gpu = gpuFor(undefined);
    // element 0: +1, -1 tie -> majority +1, only +1 agrees: mixed 1, divisor w0 = 2 -> 0.5
    // element 1: 0, -3 -> majority -1: mixed -3, divisor w1 = 4 -> -0.75
    // element 2: 0, 0 -> nothing agrees: 0 / 1
    const a = await gpu.fromArray([1, 0, 0], [3]);
    const b = await gpu.fromArray([-1, -3, 0], [3]);
    const r = await gpu.signElect([a, b], [2, 4], true);
    expect(Array.from(await gpu.read(r))).toEqual([0.5, -0.75, 0]);
    const m = await gpu.signElect([a, b], [2, 4], false);
    expect(Array.from(await gpu.read(m))).toEqual([1, -3, 0]);
    for (const t of [a, b, r, m]) gpu.release(t);
  });
});

describe('nearswap vs CPU', () => {
  // w = t / dist goes through a GPU division (2.5 ulp): allow 2^-20 · (|x| + |b|).
  it('at every length and chunking, with near-identical and distant entries', async () => {
    for (const chunk of CHUNKINGS) {
      const gpu = gpuFor(chunk);
      for (const n of LENGTHS) {
        const b = randomValues(n, n);
        const x = randomValues(n, n + 1).map((v, i) => (i % 3 === 0 ? b[i] + v * 1e-7 : v));
        const [gb, cb] = await pair(chunk, b, [n]);
        const [gx, cx] = await pair(chunk, x, [n]);
        for (const t of [0.001, 0.5]) {
          const gt = await gpu.nearswap(gb, gx, t);
          const ct = await cpu.nearswap(cb, cx, t);
          expectClose(await gpu.read(gt), await cpu.read(ct), (i) => 2 ** -20 * (Math.abs(x[i]) + Math.abs(b[i])), `n=${n} t=${t} chunk=${chunk}`);
          release(gt, ct);
        }
        release(gb, cb, gx, cx);
      }
    }
  });
});

describe('absAtLeast vs CPU', () => {
  // One f32 product and one comparison on both sides: the masks must be identical.
  it('at every length and chunking, with exact ties on the boundary', async () => {
    for (const chunk of CHUNKINGS) {
      const gpu = gpuFor(chunk);
      for (const n of LENGTHS) {
        const a = randomValues(n, 3 * n);
        const b = randomValues(n, 3 * n + 1).map((v, i) => (i % 5 === 0 ? a[i] / 0.5 : v));
        const [ga, ca] = await pair(chunk, a, [n]);
        const [gb, cb] = await pair(chunk, b, [n]);
        for (const lambda of [0.5, 0.3, 2]) {
          const gm = await gpu.absAtLeast(ga, gb, lambda);
          const cm = await cpu.absAtLeast(ca, cb, lambda);
          const got = await gpu.read(gm);
          expect(Array.from(got)).toEqual(Array.from(await cpu.read(cm)));
          if (n >= 1000) {
            const kept = got.reduce((s, v) => s + v, 0);
            expect(kept).toBeGreaterThan(0);
            expect(kept).toBeLessThan(n);
          }
          release(gm, cm);
        }
        release(ga, ca, gb, cb);
      }
    }
  });

  it('keeps the boundary and drops below it (hand-computed)', async () => {
    const gpu = gpuFor(undefined);
    const a = await gpu.fromArray([1, -1, 0.4, 0, 3], [5]);
    const b = await gpu.fromArray([2, -2, 1, 0, -7], [5]);
    const m = await gpu.absAtLeast(a, b, 0.5);
    expect(Array.from(await gpu.read(m))).toEqual([1, 1, 0, 1, 0]);
    release(a, b, m);
  });
});

describe('empty tensors', () => {
  it('every op accepts zero elements', async () => {
    const gpu = gpuFor(777);
    const key = { seed: 1, model: 0, tensor: 'e' };
    for (const shape of [[0], [0, 5], [5, 0]]) {
      const x = await gpu.decode(new Uint8Array(0), 'BF16', shape);
      const outs = [
        await gpu.lincomb([{ x, coef: 2 }], 1),
        await gpu.keepRankBand(x, 0, 0),
        await gpu.keepRandom(x, 0.5, key),
        await gpu.keepRanked(x, 0.5, 0.1, key),
        await gpu.keepWhere(x, x),
        await gpu.signElect([x, x], [1, 1], true),
        await gpu.nearswap(x, x, 0.5),
      ];
      for (const t of outs) expect((await gpu.read(t)).length).toBe(0);
      expect((await gpu.encode(x, 'F16')).length).toBe(0);
      expect(Array.from(await gpu.gram([x, x]))).toEqual([0, 0, 0, 0]);
      expect(await gpu.sumAbs(x)).toBe(0);
      expect((await gpu.gramRows([x])).length).toBe(shape.length >= 2 ? shape[0] : 1);
      for (const t of [x, ...outs]) gpu.release(t);
    }
  });
});

describe('errors and ownership', () => {
  it('rejects bad input with GpuBackendError naming the op and the reason', async () => {
    const gpu = gpuFor(777);
    await expect(gpu.decode(new Uint8Array(6), 'F32', [2])).rejects.toThrow(/decode: 6 bytes for F32 shape \[2\], expected 8/);
    const a = await gpu.fromArray([1, 2, 3, 4], [2, 2]);
    const b = await gpu.fromArray([1, 2, 3], [3]);
    const c = await gpu.fromArray([1, 2, 3, 4], [4]);
    await expect(gpu.lincomb([{ x: a, coef: 1 }, { x: b, coef: 1 }])).rejects.toThrow(GpuBackendError);
    await expect(gpu.lincomb([{ x: a, coef: 1 }, { x: b, coef: 1 }])).rejects.toThrow(/term 1 has 3 elements/);
    await expect(gpu.lincomb([{ x: a, coef: new Float32Array(3) }])).rejects.toThrow(/3 row coefficients for 2 rows/);
    await expect(gpu.signElect([a], [1, 2], true)).rejects.toThrow(/2 weights for 1 tensors/);
    await expect(gpu.keepWhere(a, b)).rejects.toThrow(/mask has 3 elements/);
    await expect(gpu.gram([])).rejects.toThrow(/no tensors/);
    // Same element count, different rows: chunks would not line up.
    const big1 = await gpu.fromArray(new Float32Array(1000), [10, 100]);
    const big2 = await gpu.fromArray(new Float32Array(1000), [1000]);
    await expect(gpu.nearswap(big1, big2, 0.5)).rejects.toThrow(/share their row layout/);
    await expect(gpu.read(cpu.fromArray([1], [1]))).rejects.toThrow(/is not a GPU tensor/);
    const other = gpuFor(1000);
    await expect(other.read(a)).rejects.toThrow(/released or belongs to another GpuBackend/);
    gpu.release(a);
    gpu.release(a); // twice: no-op
    await expect(gpu.read(a)).rejects.toThrow(/released/);
    for (const t of [b, c, big1, big2]) gpu.release(t);
  });

  it('frees every buffer it made: release, failed ops and destroy leave none', async () => {
    const before = ctx.inUseBuffers;
    const gpu = createGpuBackend(ctx, { maxChunkElements: 777 });
    const n = 4099;
    const x = await gpu.fromArray(randomValues(n, 1), [n]);
    const y = await gpu.fromArray(randomValues(n, 2), [n]);
    const key = { seed: 1, model: 0, tensor: 't' };
    const outs = [
      await gpu.lincomb([{ x, coef: 1 }, { x: y, coef: 2 }], 1),
      await gpu.keepRankBand(x, 10, 4000),
      await gpu.keepRandom(x, 0.5, key),
      await gpu.keepRanked(x, 0.5, 0.1, key),
      await gpu.keepWhere(x, y),
      await gpu.signElect([x, y, x, y, x], [1, 2, 3, 4, 5], true),
      await gpu.nearswap(x, y, 0.1),
      await gpu.decode(await gpu.encode(x, 'BF16'), 'BF16', [n]),
    ];
    await gpu.gram([x, y]);
    await gpu.gramRows([x, y]);
    await gpu.sumAbs(x);
    await gpu.encode(x, 'F16');
    // 6 chunks per tensor; temporaries (params, staging, scratch) are back in the pool.
    expect(gpu.liveTensors).toBe(10);
    expect(ctx.inUseBuffers - before).toBe(10 * 6);
    for (const t of outs) gpu.release(t);
    expect(ctx.inUseBuffers - before).toBe(2 * 6);
    await expect(gpu.lincomb([{ x, coef: new Float32Array(2) }])).rejects.toThrow();
    expect(ctx.inUseBuffers - before).toBe(2 * 6);
    gpu.destroy();
    gpu.destroy(); // safe twice
    expect(ctx.inUseBuffers).toBe(before);
    expect(gpu.liveTensors).toBe(0);
    await expect(gpu.read(x)).rejects.toThrow(/destroyed/);
  });
});

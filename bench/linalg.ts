/**
 * Linear-algebra section of `npm run bench` (`--linalg`; `--linalg-only` skips the merges and the
 * analysis): matrix-product GFLOP/s per backend (square A·B at `--linalg-sizes`, default
 * 256,512,1024, and the Gram AᵀA of a tall 4096×256 matrix, the shape of the SVD's and
 * Newton–Schulz's products), then wall times of polar (Newton–Schulz), thinSvd (Gram + host eigh)
 * and truncatedSvd (k = 64) on a seeded Gaussian matrix of each `--linalg-factor-sizes` (default
 * 1024), with the Newton–Schulz step count and the most GPU buffer bytes alive at once
 * (ctx.peakBytes after freeing the pool's idle buffers; the input included). `--linalg-large` adds
 * 4096×4096 and 4096×14336 on the GPU only (the CPU reference needs hours there; so does
 * SwiftShader for the polar factor).
 *
 * Products are timed best-of-3 below 2·10⁹ flops (once above), after one untimed product that
 * builds the pipelines; GPU timings wait for the queue to drain.
 */
import type { Backend, Tensor } from '../src/gpu/backend.ts';
import { GpuBackend } from '../src/gpu/gpu-backend.ts';
import { gaussianMatrix } from '../src/gpu/linalg/host.ts';
import { polar } from '../src/gpu/linalg/polar.ts';
import { thinSvd, truncatedSvd } from '../src/gpu/linalg/svd.ts';
import { formatBytes } from '../src/core/units.ts';

export interface LinalgRow {
  backend: string;
  device: string;
  op: string;
  shape: string;
  seconds: number | null;
  gflops?: number;
  iterations?: number;
  peakGpuBytes?: number;
  note?: string;
}

export interface LinalgBenchOptions {
  /** Square sizes of the products. */
  sizes: number[];
  /** Square sizes of the factorizations. */
  factorSizes: number[];
  /** Add 4096×4096 and 4096×14336 (GPU only). */
  large: boolean;
}

async function drained(backend: Backend): Promise<void> {
  if (backend instanceof GpuBackend) await backend.ctx.device.queue.onSubmittedWorkDone();
}

async function timed<T>(backend: Backend, run: () => Promise<T>): Promise<{ seconds: number; value: T; peak?: number }> {
  if (backend instanceof GpuBackend) {
    // Idle pooled buffers of earlier rows would count as alive: free them first.
    backend.ctx.trimPool();
    backend.ctx.resetPeak();
  }
  const t0 = performance.now();
  const value = await run();
  await drained(backend);
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, value, peak: backend instanceof GpuBackend ? backend.ctx.peakBytes : undefined };
}

async function gaussian(backend: Backend, rows: number, cols: number, seed: number): Promise<Tensor> {
  return backend.upload(gaussianMatrix(seed, rows, cols), [rows, cols]);
}

export async function benchLinalg(backends: ReadonlyMap<string, Backend>, opts: LinalgBenchOptions): Promise<LinalgRow[]> {
  const rows: LinalgRow[] = [];
  for (const [kind, backend] of backends) {
    const gpu = backend instanceof GpuBackend;
    const row = (r: Omit<LinalgRow, 'backend' | 'device'>) => {
      const full = { backend: kind, device: backend.description, ...r };
      rows.push(full);
      console.error(
        `${kind.padEnd(4)} ${r.op.padEnd(13)} ${r.shape.padEnd(16)} ${r.seconds === null ? r.note : `${r.seconds.toFixed(3)} s`}` +
          `${r.gflops !== undefined ? `  ${r.gflops.toFixed(2)} GFLOP/s` : ''}${r.iterations !== undefined ? `  ${r.iterations} steps` : ''}` +
          `${r.peakGpuBytes !== undefined ? `  peak GPU ${formatBytes(r.peakGpuBytes)}` : ''}`,
      );
    };
    const attempt = async (op: string, shape: string, run: () => Promise<Omit<LinalgRow, 'backend' | 'device' | 'op' | 'shape'>>) => {
      try {
        row({ op, shape, ...(await run()) });
      } catch (err) {
        row({ op, shape, seconds: null, note: `failed: ${err instanceof Error ? err.message : String(err)}` });
      }
    };

    // Products: m×k times k×n (Aᵀ·A for the Gram row).
    const products: { m: number; k: number; n: number; gram?: boolean }[] = opts.sizes.map((s) => ({ m: s, k: s, n: s }));
    products.push({ m: 256, k: 4096, n: 256, gram: true });
    if (opts.large && gpu) products.push({ m: 4096, k: 4096, n: 4096 });
    {
      using a = await gaussian(backend, 64, 64, 1);
      using warm = await backend.matmul(a, a);
      await drained(backend);
    }
    for (const p of products) {
      const flops = 2 * p.m * p.n * p.k;
      const shape = p.gram ? `(${p.k}×${p.m})ᵀ·itself` : `${p.m}×${p.k}·${p.k}×${p.n}`;
      await attempt('matmul', shape, async () => {
        using a = p.gram ? await gaussian(backend, p.k, p.m, 2) : await gaussian(backend, p.m, p.k, 2);
        using b = p.gram ? null : await gaussian(backend, p.k, p.n, 3);
        let best = Infinity;
        let peak: number | undefined;
        for (let rep = 0; rep < (flops < 2e9 ? 3 : 1); rep++) {
          const r = await timed(backend, () => (p.gram ? backend.matmul(a, a, { transA: true }) : backend.matmul(a, b as Tensor)));
          backend.release(r.value);
          best = Math.min(best, r.seconds);
          peak = r.peak;
        }
        return { seconds: best, gflops: flops / best / 1e9, peakGpuBytes: peak };
      });
    }

    // Factorizations.
    const shapes: [number, number][] = opts.factorSizes.map((s) => [s, s]);
    if (opts.large && gpu) shapes.push([4096, 4096], [4096, 14336]);
    for (const [m, n] of shapes) {
      const shape = `${m}×${n}`;
      using x = await gaussian(backend, m, n, 4);
      await attempt('polar', shape, async () => {
        const r = await timed(backend, () => polar(backend, x));
        backend.release(r.value.polar);
        return { seconds: r.seconds, iterations: r.value.iterations, peakGpuBytes: r.peak, note: r.value.converged ? undefined : 'not converged' };
      });
      await attempt('thinSvd', shape, async () => {
        const r = await timed(backend, () => thinSvd(backend, x));
        backend.release(r.value.U);
        backend.release(r.value.V);
        return { seconds: r.seconds, peakGpuBytes: r.peak };
      });
      await attempt('truncatedSvd', `${shape}, k=64`, async () => {
        const r = await timed(backend, () => truncatedSvd(backend, x, Math.min(64, m, n), { seed: 1 }));
        backend.release(r.value.U);
        backend.release(r.value.V);
        return { seconds: r.seconds, peakGpuBytes: r.peak };
      });
    }
  }
  return rows;
}

export function reportLinalg(rows: readonly LinalgRow[]): void {
  console.log('');
  console.log('| backend | device | op | shape | time (s) | GFLOP/s | Newton–Schulz steps | peak GPU buffers |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(
      `| ${r.backend} | ${r.device} | ${r.op} | ${r.shape} | ${r.seconds === null ? (r.note ?? '–') : r.seconds.toFixed(3)} | ` +
        `${r.gflops !== undefined ? r.gflops.toFixed(2) : '–'} | ${r.iterations ?? '–'} | ${r.peakGpuBytes !== undefined ? formatBytes(r.peakGpuBytes) : '–'} |`,
    );
  }
}

/**
 * The analysis kernels: WGSL modules and bind-group layouts, declared once (binding numbers and
 * kinds mirror the `@binding` declarations in src/shaders/analysis-*.wgsl).
 */
import electWgsl from '../../shaders/analysis-elect.wgsl?raw';
import histogramWgsl from '../../shaders/analysis-histogram.wgsl?raw';
import signsWgsl from '../../shaders/analysis-signs.wgsl?raw';
import { defineKernel } from '../context.ts';
import { composeShader } from '../device.ts';

const single = (file: string, code: string) => composeShader(file, [{ file, code }]);

const SIGNS = single('analysis-signs.wgsl', signsWgsl);
const HISTOGRAM = single('analysis-histogram.wgsl', histogramWgsl);
const ELECT = single('analysis-elect.wgsl', electWgsl);

export const ANALYSIS_KERNELS = {
  signCodes: defineKernel(SIGNS, 'sign_codes', { 0: 'uniform', 1: 'read-only-storage', 2: 'storage' }),
  signCounts: defineKernel(SIGNS, 'sign_counts', { 0: 'uniform', 3: 'read-only-storage', 4: 'storage' }),
  logHistogram: defineKernel(HISTOGRAM, 'log_histogram', { 0: 'uniform', 1: 'read-only-storage', 2: 'storage' }),
  electDivisor: defineKernel(ELECT, 'elect_divisor', {
    0: 'uniform',
    1: 'read-only-storage',
    2: 'read-only-storage',
    3: 'storage',
  }),
  electNorms: defineKernel(ELECT, 'elect_norms', {
    0: 'uniform',
    1: 'read-only-storage',
    2: 'read-only-storage',
    4: 'read-only-storage',
    5: 'storage',
  }),
} as const;

/** Entries counted by one sign_counts / log_histogram / elect_norms workgroup (`BLOCK` in the WGSL). */
export const ANALYSIS_BLOCK = 4096;
/** Counters of sign_counts for N tensors (3N + 2 + 2·N(N−1)/2). */
export function signCounterCount(models: number): number {
  return 3 * models + 2 + models * (models - 1);
}

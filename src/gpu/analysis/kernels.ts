/** The analysis kernels (src/shaders/analysis-*.wgsl), declared by binding name. */
import electWgsl from '../../shaders/analysis-elect.wgsl?raw';
import histogramWgsl from '../../shaders/analysis-histogram.wgsl?raw';
import signsWgsl from '../../shaders/analysis-signs.wgsl?raw';
import { defineKernel, shaderModule } from '../kernel.ts';

/** Entries counted by one sign_counts / log_histogram / elect_norms workgroup (`BLOCK` in the WGSL). */
export const ANALYSIS_BLOCK = 4096;

const SIGNS = shaderModule('analysis-signs.wgsl', { file: 'analysis-signs.wgsl', code: signsWgsl });
const HISTOGRAM = shaderModule('analysis-histogram.wgsl', { file: 'analysis-histogram.wgsl', code: histogramWgsl });
const ELECT = shaderModule('analysis-elect.wgsl', { file: 'analysis-elect.wgsl', code: electWgsl });
const block = { BLOCK: ANALYSIS_BLOCK };

export const ANALYSIS_KERNELS = {
  signCodes: defineKernel(SIGNS, 'sign_codes', { uses: ['x', 'codes'], constants: block }),
  signCounts: defineKernel(SIGNS, 'sign_counts', { uses: ['codes_in', 'counters'], constants: block }),
  logHistogram: defineKernel(HISTOGRAM, 'log_histogram', { uses: ['x', 'out'], constants: block }),
  electDivisor: defineKernel(ELECT, 'elect_divisor', { uses: ['total', 'wd', 'divisor'], constants: block }),
  electNorms: defineKernel(ELECT, 'elect_norms', { uses: ['total', 'wd', 'divisor_in', 'partials'], constants: block }),
};

/** Counters of sign_counts for N tensors (3N + 2 + 2·N(N−1)/2). */
export function signCounterCount(models: number): number {
  return 3 * models + 2 + models * (models - 1);
}

/**
 * Rotary embedding angles as transformers computes them (modeling_rope_utils.py), in f32:
 * inv_freq[p] = 1 / theta^(2p / head_dim), adjusted by rope_scaling (linear: divided by the factor;
 * llama3: long wavelengths divided by the factor, short ones kept, a smooth blend between), and the
 * table the `rope` op reads: row pos = [cos(pos·inv_freq), sin(pos·inv_freq)], each angle rounded to
 * f32 first as PyTorch's f32 product is.
 */
import type { LlamaConfig } from './config.ts';

const fr = Math.fround;

export function inverseFrequencies(c: Pick<LlamaConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const half = c.headDim / 2;
  const inv = new Float32Array(half);
  for (let p = 0; p < half; p++) inv[p] = fr(1 / fr(Math.pow(c.ropeTheta, fr((2 * p) / c.headDim))));
  const s = c.ropeScaling;
  switch (s.type) {
    case 'default':
      return inv;
    case 'linear':
      return inv.map((f) => fr(f / s.factor));
    case 'llama3': {
      const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
      const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
      return inv.map((f) => {
        const wavelen = (2 * Math.PI) / f;
        if (wavelen < highFreqWavelen) return f;
        if (wavelen > lowFreqWavelen) return fr(f / s.factor);
        const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        return fr(((1 - smooth) * f) / s.factor + smooth * f);
      });
    }
  }
}

/** [positions, head_dim]: cos of the angles in the first half of a row, sin in the second. */
export function ropeTable(inv: Float32Array, positions: number): Float32Array {
  const half = inv.length;
  const d = 2 * half;
  const t = new Float32Array(positions * d);
  for (let pos = 0; pos < positions; pos++) {
    for (let p = 0; p < half; p++) {
      const angle = fr(pos * inv[p]);
      t[pos * d + p] = Math.cos(angle);
      t[pos * d + half + p] = Math.sin(angle);
    }
  }
  return t;
}

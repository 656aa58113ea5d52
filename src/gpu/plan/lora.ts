/**
 * LoRA adapters applied on the backend when a tensor is loaded: W + s·B·A (or its transpose) as one
 * matmul with W as the addend (src/core/lora/adapter.ts says which factors adapt which tensor).
 */
import { isFloatDType } from '../../core/dtype.ts';
import { isAdaptedModel } from '../../core/lora/adapter.ts';
import type { ModelSource } from '../../core/source.ts';
import type { Backend, Tensor } from '../backend.ts';

/**
 * `x` (model `m`'s tensor `name`, decoded) with the adapter's delta added, as a new tensor; `x`
 * itself when `m` has no adapter for it (the caller owns whichever comes back, and `x`).
 */
export async function withAdapter(backend: Backend, m: ModelSource, name: string, x: Tensor, signal?: AbortSignal): Promise<Tensor> {
  if (!isAdaptedModel(m)) return x;
  const f = m.adapter.factors.get(name);
  if (!f) return x;
  const load = async (key: string) => {
    const info = m.adapter.weights.tensors.get(key)!;
    if (!isFloatDType(info.dtype)) throw new Error(`LoRA adapter ${m.adapter.id}: ${key} stores ${info.dtype}, not a float`);
    return backend.decode(await m.adapter.weights.readTensor(key, signal), info.dtype, info.shape);
  };
  using a = await load(f.a);
  using b = await load(f.b);
  // W + s·B·A, or W + s·(B·A)ᵀ = W + s·Aᵀ·Bᵀ.
  return f.transpose
    ? await backend.matmul(a, b, { transA: true, transB: true, alpha: f.scale, addend: x, beta: 1 })
    : await backend.matmul(b, a, { alpha: f.scale, addend: x, beta: 1 });
}

/**
 * Helpers shared by the method modules: typed parameter reads (a wrong or missing value becomes a
 * MethodError naming the method, tensor, model and parameter), task vectors, and the host-side
 * algebra for methods whose result stays in the span of their inputs (coefficients from a Gram
 * matrix, applied with one lincomb).
 */
import { TensorScope, type Backend, type Tensor } from '../backend.ts';
import { MethodError, type MergeContext, type MethodInput, type ResolvedParams } from './types.ts';

/** How a model is named in messages: its recipe label when the engine gives one, else its position. */
export function modelLabel(input: MethodInput): string {
  if (input.label) return input.label;
  return input.isBase ? 'the base model' : `model #${input.deltaIndex} (non-base, recipe order)`;
}

function where(input: MethodInput | undefined): string {
  return input ? `${modelLabel(input)}: ` : '';
}

/** Reads parameters for one method and tensor, raising MethodError on a missing or mistyped value. */
export class ParamReader {
  constructor(
    readonly method: string,
    readonly tensor: string,
  ) {}

  error(reason: string): MethodError {
    return new MethodError(this.method, this.tensor, reason);
  }

  number(params: ResolvedParams, name: string, input?: MethodInput): number {
    const v = params[name];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw this.error(`${where(input)}parameter ${name} must be a finite number, got ${describe(v)}`);
    }
    return v;
  }

  optionalNumber(params: ResolvedParams, name: string, input?: MethodInput): number | undefined {
    return params[name] === undefined ? undefined : this.number(params, name, input);
  }

  boolean(params: ResolvedParams, name: string, input?: MethodInput): boolean {
    const v = params[name];
    if (typeof v !== 'boolean') {
      throw this.error(`${where(input)}parameter ${name} must be true or false, got ${describe(v)}`);
    }
    return v;
  }

  option<T extends string>(params: ResolvedParams, name: string, options: readonly T[]): T {
    const v = params[name];
    if (typeof v !== 'string' || !(options as readonly string[]).includes(v)) {
      throw this.error(`parameter ${name} must be one of ${options.join(', ')}, got ${describe(v)}`);
    }
    return v as T;
  }
}

function describe(v: unknown): string {
  return v === undefined ? 'nothing (missing)' : JSON.stringify(v);
}

/** The base tensor, or a MethodError when the method needs one and the recipe has none. */
export function requireBase(ctx: MergeContext, method: string): Tensor {
  if (!ctx.base) throw new MethodError(method, ctx.tensorName, 'needs a base model (base_model)');
  return ctx.base;
}

/** The non-base recipe models, in recipe order. */
export function nonBaseModels(ctx: MergeContext): MethodInput[] {
  return ctx.models.filter((m) => !m.isBase);
}

/** Exactly `count` non-base models, or a MethodError saying how many there are. */
export function expectNonBase(ctx: MergeContext, method: string, count: number): MethodInput[] {
  const models = nonBaseModels(ctx);
  if (models.length !== count) {
    throw new MethodError(method, ctx.tensorName, `needs exactly ${count} non-base model(s), got ${models.length}`);
  }
  return models;
}

/** At least `count` non-base models, or a MethodError saying how many there are. */
export function expectAtLeast(ctx: MergeContext, method: string, count: number): MethodInput[] {
  const models = nonBaseModels(ctx);
  if (models.length < count) {
    throw new MethodError(method, ctx.tensorName, `needs at least ${count} non-base models, got ${models.length}`);
  }
  return models;
}

/** δ = x − base for each tensor, as new tensors (the caller releases them). */
export async function taskVectors(backend: Backend, base: Tensor, xs: readonly Tensor[]): Promise<Tensor[]> {
  // Released if a later one fails; handed to the caller otherwise.
  using scope = new TensorScope(backend);
  const out: Tensor[] = [];
  for (const x of xs) {
    out.push(
      scope.add(
        await backend.lincomb([
          { x, coef: 1 },
          { x: base, coef: -1 },
        ]),
      ),
    );
  }
  return out.map((t) => scope.keep(t));
}

export function releaseAll(backend: Backend, tensors: readonly Tensor[]): void {
  for (const t of tensors) backend.release(t);
}

/** A new tensor equal to x (methods always return a tensor the caller owns). */
export function copyOf(backend: Backend, x: Tensor): Promise<Tensor> {
  return backend.lincomb([{ x, coef: 1 }]);
}

/** The N×N block of row r of a gramRows result (or the whole of a gram result when r = 0). */
export function gramBlock(g: Float64Array, n: number, r: number): Float64Array {
  return g.subarray(r * n * n, (r + 1) * n * n);
}

/** cᵀ G c for coefficient vector c over the Gram matrix G (N×N, row-major): ‖Σ c_i x_i‖². */
export function quadForm(g: ArrayLike<number>, c: ArrayLike<number>): number {
  const n = c.length;
  let s = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s += c[i] * g[i * n + j] * c[j];
  return s;
}

/** (G c)_i = x_i · Σ_j c_j x_j. */
export function gramTimes(g: ArrayLike<number>, c: ArrayLike<number>): number[] {
  const n = c.length;
  const out = new Array<number>(n).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i] += g[i * n + j] * c[j];
  return out;
}

/**
 * Spherical interpolation coefficients (mergekit's slerp): dot of the unit vectors from the Gram
 * entries; nearly colinear (|dot| > 0.9995) falls back to lerp. Norms at or below 1e-8 are not
 * normalized, as in the reference. Returns [c0, c1] for c0·v0 + c1·v1.
 */
export function slerpCoefficients(t: number, g00: number, g01: number, g11: number): [number, number] {
  const eps = 1e-8;
  const n0 = Math.sqrt(Math.max(g00, 0));
  const n1 = Math.sqrt(Math.max(g11, 0));
  const dot = g01 / ((n0 > eps ? n0 : 1) * (n1 > eps ? n1 : 1));
  if (Math.abs(dot) > 0.9995) return [1 - t, t];
  const theta = Math.acos(dot);
  const sinTheta = Math.sin(theta);
  return [Math.sin(theta - theta * t) / sinTheta, Math.sin(theta * t) / sinTheta];
}

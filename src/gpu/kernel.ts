/**
 * Kernel declarations. A kernel is a WGSL entry point plus the names of the bindings it uses; the
 * binding numbers, their kinds and the layout of its uniform `params` struct are read from the
 * WGSL itself (src/gpu/wgsl-reflect.ts), so TypeScript never repeats a binding number or a field
 * offset. Callers pass buffers and parameters by name:
 *
 *   const lincomb = defineKernel(ELEMENTWISE, 'lincomb', { uses: ['coefs', 'x0', 'out'] });
 *   batch.dispatch(lincomb, { params: { n, offset }, buffers: { coefs, x0, out }, workgroups });
 *
 * Every shader module starts with src/shaders/prelude.wgsl, which declares the workgroup size as
 * the override constant WORKGROUP_SIZE; the host passes the same number (WORKGROUP_SIZE below), so
 * TypeScript and WGSL agree on it by construction.
 */
import preludeWgsl from '../shaders/prelude.wgsl?raw';
import { composeShader, type ShaderSource } from './device.ts';
import {
  reflectBindings,
  reflectUniformStruct,
  writeLayout,
  WgslReflectError,
  type BindingKind,
  type LayoutValue,
  type WgslLayout,
} from './wgsl-reflect.ts';

/** Threads per workgroup of every 1-D kernel (the prelude's override WORKGROUP_SIZE). */
export const WORKGROUP_SIZE = 256;

/** A WGSL module made of the prelude and the given files, in order. */
export function shaderModule(name: string, ...files: readonly { file: string; code: string }[]): ShaderSource {
  return composeShader(name, [{ file: 'prelude.wgsl', code: preludeWgsl }, ...files]);
}

export interface KernelBinding {
  readonly name: string;
  readonly binding: number;
  readonly kind: BindingKind;
}

/** A compute entry point, its bindings (group 0, sorted by number) and its parameter layout. */
export interface Kernel<B extends string = string> {
  readonly label: string;
  readonly shader: ShaderSource;
  readonly entryPoint: string;
  readonly bindings: readonly KernelBinding[];
  /** The uniform binding that receives the dispatch's params, if the kernel has one. */
  readonly paramsBinding: number | null;
  readonly paramsLayout: (WgslLayout & { kind: 'struct' }) | null;
  /** Override constants always passed (WORKGROUP_SIZE and the kernel's own). */
  readonly constants: Readonly<Record<string, number>>;
  /** Phantom: the names of the storage bindings a dispatch must give. */
  readonly __bindings?: B;
}

export interface KernelOptions<B extends string> {
  /** Storage bindings the entry point uses, by their WGSL names. */
  uses: readonly B[];
  /** Override constants of the module (beyond WORKGROUP_SIZE). */
  constants?: Readonly<Record<string, number>>;
  /** Name of the uniform parameter binding. @default 'params' (when the module declares it) */
  params?: string | null;
}

export function defineKernel<const B extends string>(shader: ShaderSource, entryPoint: string, opts: KernelOptions<B>): Kernel<B> {
  const label = `${shader.name}:${entryPoint}`;
  const declared = reflectBindings(shader.name, shader.code);
  if (!new RegExp(`\\bfn\\s+${entryPoint}\\s*\\(`).test(shader.code)) {
    throw new WgslReflectError(shader.name, `no entry point ${entryPoint}`);
  }
  const bindings: KernelBinding[] = [];
  let paramsBinding: number | null = null;
  let paramsLayout: (WgslLayout & { kind: 'struct' }) | null = null;
  const paramsName = opts.params === undefined ? (declared.has('params') ? 'params' : null) : opts.params;
  if (paramsName !== null) {
    const p = declared.get(paramsName);
    if (!p || p.kind !== 'uniform') throw new WgslReflectError(shader.name, `${entryPoint}: no uniform binding ${paramsName}`);
    paramsBinding = p.binding;
    paramsLayout = reflectUniformStruct(shader.name, shader.code, p.type);
    bindings.push({ name: p.name, binding: p.binding, kind: 'uniform' });
  }
  for (const name of opts.uses) {
    const b = declared.get(name);
    if (!b) throw new WgslReflectError(shader.name, `${entryPoint}: no binding named ${name} (has ${[...declared.keys()].join(', ')})`);
    if (b.kind === 'uniform') throw new WgslReflectError(shader.name, `${entryPoint}: ${name} is a uniform, not a storage binding`);
    bindings.push({ name, binding: b.binding, kind: b.kind });
  }
  bindings.sort((a, b) => a.binding - b.binding);
  for (let i = 1; i < bindings.length; i++) {
    if (bindings[i].binding === bindings[i - 1].binding) {
      throw new WgslReflectError(shader.name, `${entryPoint}: ${bindings[i - 1].name} and ${bindings[i].name} share binding ${bindings[i].binding}`);
    }
  }
  return {
    label,
    shader,
    entryPoint,
    bindings,
    paramsBinding,
    paramsLayout,
    constants: { WORKGROUP_SIZE, ...opts.constants },
  };
}

/** Bytes reserved per dispatch for its uniform parameters (WebGPU's largest uniform offset alignment). */
export const PARAMS_SLOT = 256;

/** The params bytes of one dispatch (absent fields are zero). */
export function encodeParams(kernel: Kernel, params: LayoutValue | undefined): Uint8Array {
  const layout = kernel.paramsLayout;
  if (!layout) {
    if (params !== undefined) throw new TypeError(`${kernel.label} takes no params`);
    return new Uint8Array(0);
  }
  if (layout.size > PARAMS_SLOT) throw new RangeError(`${kernel.label}: params struct of ${layout.size} bytes exceeds ${PARAMS_SLOT}`);
  const bytes = new Uint8Array(Math.max(16, layout.size));
  writeLayout(new DataView(bytes.buffer), 0, layout, params ?? {}, `${kernel.label} params`);
  return bytes;
}

/** Workgroups for one thread per element of n elements (1-D kernels). */
export function groupsFor(n: number, perGroup = WORKGROUP_SIZE): number {
  return Math.ceil(n / perGroup);
}

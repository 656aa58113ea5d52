/**
 * Just enough WGSL reflection for the kernel declarations (src/gpu/kernel.ts): the `@binding`
 * variables of group 0 by name, and the byte layout of uniform structs (scalars, vectors, fixed
 * arrays and nested structs, with the uniform address space's alignment rules), so the host writes
 * a kernel's parameters by field name instead of by position.
 */

export type BindingKind = 'uniform' | 'read-only-storage' | 'storage';

export interface ReflectedBinding {
  readonly name: string;
  readonly binding: number;
  readonly kind: BindingKind;
  /** The declared type, e.g. `Params` or `array<f32>`. */
  readonly type: string;
}

/** A laid-out WGSL type: scalars are leaves; structs and arrays have members. */
export type WgslLayout =
  | { readonly kind: 'scalar'; readonly scalar: 'u32' | 'i32' | 'f32'; readonly size: 4; readonly align: 4 }
  | { readonly kind: 'vector'; readonly scalar: 'u32' | 'i32' | 'f32'; readonly count: number; readonly size: number; readonly align: number }
  | { readonly kind: 'array'; readonly element: WgslLayout; readonly count: number; readonly stride: number; readonly size: number; readonly align: number }
  | { readonly kind: 'struct'; readonly name: string; readonly fields: readonly StructField[]; readonly size: number; readonly align: number };

export interface StructField {
  readonly name: string;
  readonly offset: number;
  readonly layout: WgslLayout;
}

export class WgslReflectError extends Error {
  constructor(shader: string, reason: string) {
    super(`${shader}: ${reason}`);
    this.name = 'WgslReflectError';
  }
}

/** WGSL source without comments (line and block comments; block comments nest in WGSL). */
export function stripComments(code: string): string {
  let out = '';
  let depth = 0;
  for (let i = 0; i < code.length; i++) {
    const two = code.slice(i, i + 2);
    if (depth === 0 && two === '//') {
      while (i < code.length && code[i] !== '\n') i++;
      out += '\n';
      continue;
    }
    if (two === '/*') {
      depth++;
      i++;
      continue;
    }
    if (depth > 0 && two === '*/') {
      depth--;
      i++;
      continue;
    }
    if (depth === 0) out += code[i];
  }
  return out;
}

const BINDING = /@group\(\s*0\s*\)\s*@binding\(\s*(\d+)\s*\)\s*var(?:<\s*([\w\s,]+?)\s*>)?\s+(\w+)\s*:\s*([^;]+);/g;

/** Every group-0 binding of a module, by name. */
export function reflectBindings(shader: string, code: string): Map<string, ReflectedBinding> {
  const out = new Map<string, ReflectedBinding>();
  for (const m of stripComments(code).matchAll(BINDING)) {
    const [, num, space = '', name, type] = m;
    const parts = space.split(',').map((s) => s.trim());
    let kind: BindingKind;
    if (parts[0] === 'uniform') kind = 'uniform';
    else if (parts[0] === 'storage') kind = parts[1] === 'read_write' ? 'storage' : 'read-only-storage';
    else throw new WgslReflectError(shader, `binding ${name}: address space <${space}> is not uniform or storage`);
    if (out.has(name)) throw new WgslReflectError(shader, `binding ${name} is declared twice`);
    out.set(name, { name, binding: Number(num), kind, type: type.trim() });
  }
  return out;
}

/** The struct declarations of a module, by name, in source form (field name → type text). */
function structSources(code: string): Map<string, [string, string][]> {
  const out = new Map<string, [string, string][]>();
  const re = /struct\s+(\w+)\s*\{([^}]*)\}/g;
  for (const m of stripComments(code).matchAll(re)) {
    const fields: [string, string][] = [];
    for (const decl of splitTopLevel(m[2])) {
      const f = /^\s*(?:@\w+(?:\([^)]*\))?\s*)*(\w+)\s*:\s*(.+?)\s*$/.exec(decl);
      if (f) fields.push([f[1], f[2]]);
    }
    out.set(m[1], fields);
  }
  return out;
}

/** Split "a: u32, b: array<f32, 4>," at commas outside angle brackets. */
function splitTopLevel(body: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of body) {
    if (ch === '<') depth++;
    if (ch === '>') depth--;
    if (ch === ',' && depth === 0) {
      if (cur.trim()) parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) parts.push(cur);
  return parts;
}

const roundUp = (k: number, n: number) => Math.ceil(n / k) * k;

/**
 * The layout of a named struct of the module for a uniform binding. Offsets follow WGSL's general
 * rules (scalars align 4, vec2 8, vec3/vec4 16; a struct aligns to its largest member). Uniform
 * buffers used to add stricter rules (nested structs and array elements on 16-byte boundaries),
 * which newer implementations drop; a struct laid out differently under the two would be read
 * differently on different browsers, so such a struct is refused here: pad it explicitly.
 */
export function reflectUniformStruct(shader: string, code: string, name: string): WgslLayout & { kind: 'struct' } {
  const structs = structSources(code);
  const layoutOf = (type: string, seen: string[]): WgslLayout => {
    const t = type.replace(/\s+/g, '');
    if (t === 'u32' || t === 'i32' || t === 'f32') return { kind: 'scalar', scalar: t, size: 4, align: 4 };
    const vec = /^vec([234])<(u32|i32|f32)>$/.exec(t) ?? /^vec([234])([uif])$/.exec(t);
    if (vec) {
      const count = Number(vec[1]);
      const s = vec[2];
      const scalar = (s === 'u' ? 'u32' : s === 'i' ? 'i32' : s === 'f' ? 'f32' : s) as 'u32' | 'i32' | 'f32';
      return { kind: 'vector', scalar, count, size: count === 3 ? 12 : 4 * count, align: count === 2 ? 8 : 16 };
    }
    const arr = /^array<(.+),(\d+)u?>$/.exec(t);
    if (arr) {
      const element = layoutOf(arr[1], seen);
      const stride = roundUp(element.align, element.size);
      if (stride % 16 !== 0) throw new WgslReflectError(shader, `${type} in a uniform: use elements of a multiple of 16 bytes (e.g. vec4)`);
      return { kind: 'array', element, count: Number(arr[2]), stride, size: stride * Number(arr[2]), align: Math.max(16, element.align) };
    }
    return structLayout(t, seen);
  };
  const structLayout = (sname: string, seen: string[]): WgslLayout & { kind: 'struct' } => {
    const src = structs.get(sname);
    if (!src) throw new WgslReflectError(shader, `type ${sname} is not a struct of this module (or not supported in uniforms)`);
    if (seen.includes(sname)) throw new WgslReflectError(shader, `struct ${sname} contains itself`);
    let offset = 0;
    let align = 4;
    const fields: StructField[] = [];
    for (const [fname, ftype] of src) {
      const layout = layoutOf(ftype, [...seen, sname]);
      offset = roundUp(layout.align, offset);
      if ((layout.kind === 'struct' || layout.kind === 'array') && (offset % 16 !== 0 || layout.size % 16 !== 0)) {
        throw new WgslReflectError(
          shader,
          `struct ${sname}: member ${fname} (${ftype}) must start on a 16-byte boundary and span a multiple of 16 bytes ` +
            `(offset ${offset}, ${layout.size} bytes): add padding fields so every WGSL implementation lays it out alike`,
        );
      }
      fields.push({ name: fname, offset, layout });
      offset += layout.size;
      align = Math.max(align, layout.align);
    }
    return { kind: 'struct', name: sname, fields, size: roundUp(align, offset), align };
  };
  return structLayout(name, []);
}

/** Values for a struct layout: numbers for scalars, arrays for vectors/arrays, objects for structs. */
export type LayoutValue = number | readonly LayoutValue[] | { readonly [field: string]: LayoutValue | undefined };

/**
 * Write `value` into `view` at `offset` following `layout`. Struct fields that are absent are left
 * as they are (zero in a fresh buffer); unknown field names throw, so a misspelt parameter is an
 * error rather than a silent zero.
 */
export function writeLayout(view: DataView, offset: number, layout: WgslLayout, value: LayoutValue, path: string): void {
  switch (layout.kind) {
    case 'scalar':
      writeScalar(view, offset, layout.scalar, value, path);
      return;
    case 'vector': {
      const items = asArray(value, layout.count, path);
      items.forEach((v, i) => writeScalar(view, offset + 4 * i, layout.scalar, v, `${path}[${i}]`));
      return;
    }
    case 'array': {
      const items = asArray(value, layout.count, path);
      items.forEach((v, i) => writeLayout(view, offset + layout.stride * i, layout.element, v, `${path}[${i}]`));
      return;
    }
    case 'struct': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new TypeError(`${path}: expected an object for struct ${layout.name}`);
      }
      const byName = new Map(layout.fields.map((f) => [f.name, f]));
      for (const [key, v] of Object.entries(value)) {
        const f = byName.get(key);
        if (!f) throw new TypeError(`${path}: struct ${layout.name} has no field ${key} (fields: ${[...byName.keys()].join(', ')})`);
        if (v !== undefined) writeLayout(view, offset + f.offset, f.layout, v, `${path}.${key}`);
      }
      return;
    }
  }
}

function asArray(value: LayoutValue, count: number, path: string): readonly LayoutValue[] {
  if (!Array.isArray(value)) throw new TypeError(`${path}: expected an array of ${count}`);
  if (value.length > count) throw new TypeError(`${path}: ${value.length} values for ${count} slots`);
  return value;
}

function writeScalar(view: DataView, offset: number, scalar: 'u32' | 'i32' | 'f32', v: LayoutValue, path: string): void {
  if (typeof v !== 'number' || Number.isNaN(v) && scalar !== 'f32') {
    throw new TypeError(`${path}: expected a number, got ${JSON.stringify(v)}`);
  }
  if (scalar === 'f32') view.setFloat32(offset, v, true);
  else if (scalar === 'i32') view.setInt32(offset, v, true);
  else {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${path}: ${v} is not a u32`);
    view.setUint32(offset, v, true);
  }
}

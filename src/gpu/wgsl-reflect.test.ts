/**
 * WGSL reflection (wgsl-reflect.ts): bindings by name, uniform struct layouts written by field name,
 * and the structs refused because implementations would lay them out differently. Offsets are
 * hand-computed from the WGSL layout rules.
 */
import { describe, expect, it } from 'vitest';
import { reflectBindings, reflectUniformStruct, stripComments, writeLayout, WgslReflectError } from './wgsl-reflect.ts';

const MODULE = `
// A comment with @group(0) @binding(9) var<storage, read> ghost: array<f32>; in it.
/* block /* nested */ comment */
struct Inner { a: u32, b: f32, c: i32, d: u32 }
struct Params {
  n: u32,
  shift: f32,
  _pad0: u32,
  _pad1: u32,
  w: vec4<f32>,
  inner: Inner,
  rows: array<vec4<u32>, 2>,
  tail: i32,
}
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0)  @binding( 3 ) var<storage, read_write> out: array<u32>;
`;

describe('reflectBindings', () => {
  it('finds each group-0 binding with its number, kind and type, ignoring comments', () => {
    const b = reflectBindings('m.wgsl', MODULE);
    expect([...b.values()]).toEqual([
      { name: 'params', binding: 0, kind: 'uniform', type: 'Params' },
      { name: 'x', binding: 1, kind: 'read-only-storage', type: 'array<f32>' },
      { name: 'out', binding: 3, kind: 'storage', type: 'array<u32>' },
    ]);
  });

  it('strips nested block comments and line comments', () => {
    expect(stripComments('a /* b /* c */ d */ e // f\ng')).toBe('a  e \ng');
  });
});

describe('reflectUniformStruct', () => {
  it('lays out scalars, vec4, nested structs and vec4 arrays', () => {
    const s = reflectUniformStruct('m.wgsl', MODULE, 'Params');
    expect(s.fields.map((f) => [f.name, f.offset])).toEqual([
      ['n', 0],
      ['shift', 4],
      ['_pad0', 8],
      ['_pad1', 12],
      ['w', 16],
      ['inner', 32],
      ['rows', 48],
      ['tail', 80],
    ]);
    expect(s.size).toBe(96); // 84 rounded up to the struct's 16-byte alignment
  });

  it('refuses a nested struct that the old and new uniform rules would place differently', () => {
    const bad = 'struct S { a: u32, b: u32, c: u32 }\nstruct Params { n: u32, s: S }';
    expect(() => reflectUniformStruct('bad.wgsl', bad, 'Params')).toThrow(WgslReflectError);
    expect(() => reflectUniformStruct('bad.wgsl', bad, 'Params')).toThrow(/bad\.wgsl: struct Params: member s \(S\) must start on a 16-byte boundary/);
    expect(() => reflectUniformStruct('bad.wgsl', 'struct Params { a: array<u32, 4> }', 'Params')).toThrow(/multiple of 16 bytes/);
    expect(() => reflectUniformStruct('bad.wgsl', 'struct Params { a: Missing }', 'Params')).toThrow(/type Missing is not a struct/);
  });
});

describe('writeLayout', () => {
  const layout = reflectUniformStruct('m.wgsl', MODULE, 'Params');
  const write = (value: object) => {
    const view = new DataView(new ArrayBuffer(layout.size));
    writeLayout(view, 0, layout, value as never, 'Params');
    return view;
  };

  it('writes each field at its offset, leaving absent fields zero', () => {
    const v = write({ n: 7, shift: -1.5, w: [1, 2, 3, 4], inner: { b: 0.25, c: -3 }, rows: [[1, 2, 3, 4], [5]], tail: -9 });
    expect(v.getUint32(0, true)).toBe(7);
    expect(v.getFloat32(4, true)).toBe(-1.5);
    expect([16, 20, 24, 28].map((o) => v.getFloat32(o, true))).toEqual([1, 2, 3, 4]);
    expect(v.getUint32(32, true)).toBe(0); // inner.a absent
    expect(v.getFloat32(36, true)).toBe(0.25);
    expect(v.getInt32(40, true)).toBe(-3);
    expect(v.getUint32(48 + 12, true)).toBe(4);
    expect(v.getUint32(64, true)).toBe(5);
    expect(v.getInt32(80, true)).toBe(-9);
  });

  it('rejects unknown fields, non-integer or negative u32 values and too many array items', () => {
    expect(() => write({ m: 1 })).toThrow(/struct Params has no field m \(fields: n, shift, _pad0, _pad1, w, inner, rows, tail\)/);
    expect(() => write({ inner: { e: 1 } })).toThrow(/Params\.inner: struct Inner has no field e/);
    expect(() => write({ n: 1.5 })).toThrow(/Params\.n: 1\.5 is not a u32/);
    expect(() => write({ n: -1 })).toThrow(/is not a u32/);
    expect(() => write({ w: [1, 2, 3, 4, 5] })).toThrow(/Params\.w: 5 values for 4 slots/);
    expect(() => write({ n: 'x' })).toThrow(/expected a number/);
  });
});

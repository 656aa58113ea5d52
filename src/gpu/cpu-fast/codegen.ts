/**
 * Code generation: an expression DAG (expr.ts) plus what to do with its values (a consumer: store,
 * encode, sum, histogram, ...) becomes the source of one JavaScript kernel. The kernel computes every
 * node once per element in topological order, with the reference's f32 semantics: each op rounds
 * with Math.fround exactly where the reference (src/gpu/ops/*.cpu.ts) does, in the same order, so
 * fused results are bit-identical to running the reference op by op.
 *
 * Sources depend only on the DAG's shape (ops, formats, sharing, which options are on), never on
 * values: coefficients, thresholds, seeds and row lengths are parameters (`p[k]`), data are bound
 * views (`v[k]`). The source itself is the cache key of the compiled kernel (threads.ts).
 *
 * A kernel source is the body of `new Function('rt', source)`, run once per thread; it returns
 * `{ begin(slot), run(v, p, state, start, end, chunk), end(v, p, state, slot) }`: `begin` makes the
 * per-job `state` of the thread writing results slot `slot` (zeroed histograms), `run` does the items [start, end) (elements, or rows
 * for row consumers) of chunk number `chunk`, `end` flushes the state into slot `slot` of the
 * results. Views and parameters arrive as arguments and are read into locals (a closure per job
 * would keep V8 from specializing the loop). `rt` is the per-thread runtime (runtime.ts).
 */
import type { FloatDType } from '../../core/dtype.ts';
import type { ViewType } from './buffers.ts';
import { assertNever, inputsOf, topoOrder, type Node } from './expr.ts';

/** A typed view a kernel reads or writes: `length` elements of `type` at `byteOffset` of `buffer`. */
export interface Binding {
  buffer: ArrayBufferLike;
  type: ViewType;
  byteOffset: number;
  length: number;
  /** The kernel writes it (must be shareable when the kernel runs on worker threads). */
  output?: boolean;
}

/** One radix-select digit histogram: entries whose key matches `prefix` on `mask` count digit (key >>> shift) & (bins - 1). */
export interface DigitSelector {
  prefix: number;
  mask: number;
  shift: number;
}

/** What a kernel does with the values of its roots. */
export type Consumer =
  /** root 0 as f32 into `out` (elements) */
  | { kind: 'store'; out: Binding }
  /** root 0 encoded as `format` into `out` (u16 for BF16/F16, f32 for F32) */
  | { kind: 'encode'; format: FloatDType; out: Binding }
  /** Σ|root r| per chunk for every root r (R roots), f64, into res[chunk·R + r] */
  | { kind: 'sumAbs'; res: Binding }
  /** Σ root_a·root_b per chunk for a <= b (pair q in row-major upper-triangle order), f64 into res[chunk·P + q] */
  | { kind: 'dots'; res: Binding }
  /** per row (items are rows of rowLen): res[row·N·N + a·N + b] = row dot products, summed in element order */
  | { kind: 'rowDots'; rowLen: number; res: Binding }
  /** per-thread digit histograms of key(root 0) for 1–2 selectors of `bins` bins, into res[slot·S·bins + s·bins + digit] */
  | { kind: 'histogram'; bins: number; selectors: DigitSelector[]; res: Binding }
  /** per chunk: how many keys equal keys[s], into res[chunk·S + s] (and are below it, into below[chunk·S + s]) */
  | { kind: 'keyCount'; keys: number[]; res: Binding; below?: Binding }
  /** res[0] = index of the match number `nth` (0-based) of key == `key` in [start, end), res[1] = 1 if found */
  | { kind: 'keyFind'; key: number; nth: number; res: Binding }
  /** keys[k] = key(root 0) at element index[k] (items are the k) */
  | { kind: 'gather'; index: Binding; keys: Binding }
  /**
   * For 1–2 key windows [lo, hi] (inclusive): per chunk, below[chunk·W + w] = entries with key < lo_w,
   * and every entry inside some window appended (index, key) to its thread's region of `capacity`
   * entries in candIndex/candKey (slot·capacity + position; positions past capacity are counted, not
   * written); table[chunk·3 ..] = [slot, first position, count] says where each chunk's entries went.
   */
  | { kind: 'collect'; windows: [number, number][]; capacity: number; below: Binding; table: Binding; candIndex: Binding; candKey: Binding }
  /**
   * DELLA: per row (items are rows of rowLen), rank entries by (key, index) and set mask[i] = 1 where
   * the counter-based uniform of i is below thresholds[rank] / 2^24 (runtime.ts keepRankedRow;
   * `monotone`: thresholds are monotone in rank, so a histogram of the keys decides most entries)
   */
  | {
      kind: 'ranked';
      rowLen: number;
      seedHash: number;
      thresholds: Binding;
      monotone: boolean;
      mask: Binding;
      /**
       * Also Σ|x| and Σ|kept| (f64, in element order) per chunk of `chunk` elements into
       * norms[chunk·2 ..], as sumAbs sums them for rescaleL1; jobs of `rowsPerJob` rows then start
       * on chunk boundaries.
       */
      norms?: { res: Binding; chunk: number; rowsPerJob: number };
    };

/** Whether a consumer's items are rows (chunked by whole rows) rather than elements. */
export function isRowConsumer(c: Consumer): c is Extract<Consumer, { rowLen: number }> {
  return c.kind === 'rowDots' || c.kind === 'ranked';
}

export interface KernelPlan {
  source: string;
  bindings: Binding[];
  params: Float64Array;
}

const VIEW_CTOR: Record<ViewType, string> = { u8: 'Uint8Array', u16: 'Uint16Array', u32: 'Uint32Array', i32: 'Int32Array', f32: 'Float32Array', f64: 'Float64Array' };

/** Collects the bound views and parameters of a kernel while its source is written. */
class Builder {
  readonly bindings: Binding[] = [];
  readonly params: number[] = [];
  readonly #bound = new Map<ArrayBufferLike, Map<string, string>>();

  /** Name of a view (the same view bound twice gets one name). */
  view(b: Binding): string {
    const key = `${b.type}:${b.byteOffset}:${b.length}:${b.output ? 1 : 0}`;
    let byBuffer = this.#bound.get(b.buffer);
    if (!byBuffer) this.#bound.set(b.buffer, (byBuffer = new Map()));
    const have = byBuffer.get(key);
    if (have) return have;
    const name = `v${this.bindings.length}`;
    this.bindings.push(b);
    byBuffer.set(key, name);
    return name;
  }

  /** Name of a parameter holding `value` (an f64; f32 values are passed already rounded). */
  param(value: number): string {
    this.params.push(value);
    return `p${this.params.length - 1}`;
  }

  /** Locals for the views and parameters named in `code` (read from the arguments v and p). */
  header(code: readonly string[]): string[] {
    const text = code.join('\n');
    const used = (name: string) => new RegExp(`\\b${name}\\b`).test(text);
    const lines: string[] = [];
    this.bindings.forEach((_, k) => used(`v${k}`) && lines.push(`const v${k} = v[${k}];`));
    this.params.forEach((_, k) => used(`p${k}`) && lines.push(`const p${k} = p[${k}];`));
    return lines;
  }
}

/** Per-element code for the DAG under `roots`: statements (using `i`) and the roots' value names. */
interface ElementCode {
  body: string[];
  roots: string[];
  /** Row counters the body needs: `row<k>` over rows of parameter `rowLen`. */
  rows: { name: string; rowLen: string }[];
}

function elementCode(b: Builder, roots: readonly Node[]): ElementCode {
  const names = new Map<Node, string>();
  const body: string[] = [];
  const rows: ElementCode['rows'] = [];
  const rowVars = new Map<number, string>();
  const rowOf = (rowLen: number) => {
    let name = rowVars.get(rowLen);
    if (!name) {
      name = `row${rows.length}`;
      rowVars.set(rowLen, name);
      rows.push({ name, rowLen: b.param(rowLen) });
    }
    return name;
  };
  const nodes = topoOrder(roots);
  for (const n of nodes) {
    const e = `e${names.size}`;
    const x = (m: Node) => names.get(m)!;
    const op = n.op;
    switch (op.kind) {
      case 'data': {
        const v = b.view({ buffer: op.storage.buffer, type: op.format === 'F32' ? 'f32' : op.format === 'U8' ? 'u8' : 'u16', byteOffset: 0, length: n.numel });
        const read = op.format === 'BF16' ? `TB[${v}[i]]` : op.format === 'F16' ? `TH[${v}[i]]` : `${v}[i]`;
        body.push(`const ${e} = ${read};`);
        break;
      }
      case 'fill':
        body.push(`const ${e} = ${b.param(op.value)};`);
        break;
      case 'lincomb': {
        const row = op.terms.some((t) => typeof t.coef !== 'number') ? rowOf(op.rowLen) : '';
        op.terms.forEach((t, k) => {
          const coef = typeof t.coef === 'number' ? b.param(t.coef) : `${b.view({ buffer: t.coef.buffer, type: 'f32', byteOffset: t.coef.byteOffset, length: t.coef.length })}[${row}]`;
          const prod = `fr(${coef} * ${x(t.x)})`;
          body.push(k === 0 ? `let ${e} = ${prod};` : `${e} = fr(${e} + ${prod});`);
        });
        if (op.bias !== 0) body.push(`${e} = fr(${e} + ${b.param(op.bias)});`);
        break;
      }
      case 'quantize':
        if (op.dtype === 'F32') body.push(`const ${e} = ${x(op.x)};`);
        else if (op.dtype === 'BF16') body.push(bitsOf(x(op.x), `${e}u`), `const ${e} = TB[${bf16Of(`${e}u`)}];`);
        else body.push(bitsOf(x(op.x), `${e}u`), `let ${e}h = 0;`, ...f16Of(`${e}u`, `${e}h`), `const ${e} = TH[${e}h];`);
        break;
      case 'nearswap': {
        const base = x(op.base);
        const v = x(op.x);
        const w = `${e}w`;
        body.push(
          `const ${w} = Math.min(Math.max(fr(${b.param(op.t)} / Math.max(Math.abs(fr(${base} - ${v})), ${b.param(Math.fround(1e-6))})), 0), 1);`,
          `const ${e} = fr(fr(${w} * ${v}) + fr(fr(1 - ${w}) * ${base}));`,
        );
        break;
      }
      case 'absAtLeast':
        body.push(`const ${e} = Math.abs(${x(op.a)}) >= fr(${b.param(op.lambda)} * Math.abs(${x(op.b)})) ? 1 : 0;`);
        break;
      // The reference computes these in f64 and stores f32: one rounding at the end.
      case 'multiply':
        body.push(`const ${e} = fr(${x(op.a)} * ${x(op.b)});`);
        break;
      case 'divideAtLeast':
        body.push(`const ${e} = fr(${x(op.a)} / Math.max(${x(op.b)}, ${b.param(op.floor)}));`);
        break;
      case 'expAffine':
        body.push(`const ${e} = fr(Math.exp(fr(fr(fr(${x(op.x)} - ${b.param(op.shift)}) * ${b.param(op.scale)}) + ${b.param(op.bias)})));`);
        break;
      case 'rampAbove':
        body.push(`const ${e} = fr(Math.max(fr(${x(op.x)} - ${b.param(op.threshold)}), 0) * ${b.param(op.scale)});`);
        break;
      case 'keepRandom': {
        const h = `${e}h`;
        body.push(
          `let ${h} = (${b.param(op.seedHash)} ^ i) >>> 0;`,
          `${h} ^= ${h} >>> 16; ${h} = Math.imul(${h}, 0x7feb352d) >>> 0; ${h} ^= ${h} >>> 15; ${h} = Math.imul(${h}, 0x846ca68b) >>> 0; ${h} ^= ${h} >>> 16;`,
          `const ${e} = (${h} >>> 8) < ${b.param(op.threshold)} ? ${x(op.x)} : 0;`,
        );
        break;
      }
      case 'keepWhere':
        body.push(`const ${e} = ${x(op.mask)} !== 0 ? ${x(op.x)} : 0;`);
        break;
      case 'keepBand': {
        const v = x(op.x);
        const k = `${e}k`;
        const conds: string[] = [];
        if (op.band.lo) {
          const key = b.param(op.band.lo.key);
          conds.push(`(${k} > ${key} || (${k} === ${key} && i >= ${b.param(op.band.lo.index)}))`);
        }
        if (op.band.hi) {
          const key = b.param(op.band.hi.key);
          conds.push(`(${k} < ${key} || (${k} === ${key} && i < ${b.param(op.band.hi.index)}))`);
        }
        if (conds.length === 0) body.push(`const ${e} = ${v};`);
        else body.push(keyOf(v, k), `const ${e} = ${conds.join(' && ')} ? ${v} : 0;`);
        break;
      }
      case 'signElect': {
        const vs = op.xs.map(x);
        const [tot, maj, mixed, div] = [`${e}t`, `${e}m`, `${e}x`, `${e}d`];
        body.push(`let ${tot} = 0;`);
        for (const v of vs) body.push(`${tot} = fr(${tot} + ${v});`);
        body.push(`const ${maj} = ${tot} >= 0 ? 1 : -1;`, `let ${mixed} = 0, ${div} = 0;`);
        vs.forEach((v, k) => {
          body.push(`if (Math.sign(${v}) === ${maj}) { ${mixed} = fr(${mixed} + ${v}); ${div} = fr(${div} + ${b.param(Math.fround(op.weights[k]))}); }`);
        });
        if (op.normalize) body.push(`if (${div} === 0) ${div} = 1;`, `${mixed} = fr(${mixed} / ${div});`);
        body.push(`const ${e} = ${mixed};`);
        break;
      }
      default:
        assertNever(op);
    }
    names.set(n, e);
  }
  return { body, roots: roots.map((r) => names.get(r)!), rows };
}

/** A loop over the positions index[k], k in [from, to) (rows found by division: positions jump). */
function gatherLoop(el: ElementCode, index: string, from: string, to: string, perElement: string[]): string[] {
  const lines = [`for (let k = ${from}; k < ${to}; k++) {`, `  const i = ${index}[k];`];
  for (const r of el.rows) lines.push(`  const ${r.name} = Math.floor(i / ${r.rowLen});`);
  for (const l of el.body) lines.push(`  ${l}`);
  for (const l of perElement) lines.push(`  ${l}`);
  lines.push('}');
  return lines;
}

/** A loop over elements [from, to) running `code` per element after the row counters advance. */
function elementLoop(el: ElementCode, from: string, to: string, perElement: string[]): string[] {
  const lines: string[] = [];
  for (const r of el.rows) lines.push(`let ${r.name} = Math.floor(${from} / ${r.rowLen}), ${r.name}n = (${r.name} + 1) * ${r.rowLen};`);
  lines.push(`for (let i = ${from}; i < ${to}; i++) {`);
  for (const r of el.rows) lines.push(`  if (i === ${r.name}n) { ${r.name}++; ${r.name}n += ${r.rowLen}; }`);
  for (const l of el.body) lines.push(`  ${l}`);
  for (const l of perElement) lines.push(`  ${l}`);
  lines.push('}');
  return lines;
}

const indent = (lines: string[], by = '    ') => lines.map((l) => by + l);

/*
 * Bit-level helpers are written out where they are used, not called: V8 stops inlining calls in a
 * large kernel, and a call passing an f32 value boxes it (an allocation per element). `S`/`SU` are
 * the kernel's one-element f32/u32 views of the same bytes.
 */

/** `out` = the f32 bits of `value` as an unsigned integer. */
const bitsOf = (value: string, out: string) => `S[0] = ${value}; const ${out} = SU[0];`;

/** BF16 bits of f32 bits `u`: round to nearest even, NaN -> 0x7FC0 (src/core/dtype.ts f32ToBf16Bits). */
const bf16Of = (u: string) => `((${u} & 0x7fffffff) > 0x7f800000 ? 0x7fc0 : ((${u} + 0x7fff + ((${u} >>> 16) & 1)) >>> 16) & 0xffff)`;

/** Statements setting `out` (declared by the caller) to the F16 bits of f32 bits `u` (dtype.ts f32ToF16Bits). */
function f16Of(u: string, out: string): string[] {
  return [
    '{',
    `  const sign = (${u} >>> 16) & 0x8000, exp = (${u} >>> 23) & 0xff;`,
    `  let mant = ${u} & 0x7fffff;`,
    `  if (exp === 0xff) ${out} = sign | 0x7c00 | (mant ? 0x200 : 0);`,
    '  else {',
    '    let e = exp - 127 + 15;',
    `    if (e >= 0x1f) ${out} = sign | 0x7c00;`,
    '    else if (e <= 0) {',
    `      if (e < -10) ${out} = sign;`,
    '      else {',
    '        mant |= 0x800000;',
    '        const shift = 14 - e, half = 1 << (shift - 1), rest = mant & ((1 << shift) - 1);',
    '        let m = mant >>> shift;',
    '        if (rest > half || (rest === half && m & 1)) m++;',
    `        ${out} = sign | m;`,
    '      }',
    '    } else {',
    '      const rest = mant & 0x1fff;',
    '      let m = mant >>> 13;',
    '      if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {',
    '        m++;',
    '        if (m === 0x400) {',
    '          m = 0;',
    '          e++;',
    '        }',
    '      }',
    `      ${out} = e >= 0x1f ? sign | 0x7c00 : sign | (e << 10) | m;`,
    '    }',
    '  }',
    '}',
  ];
}

/** The magnitude key of `value` (f32 bits of |value|: unsigned order = |value| order, NaN above +Inf). */
const keyOf = (value: string, out: string) => `S[0] = ${value}; const ${out} = SU[0] & 0x7fffffff;`;

/** The kernel source and bindings computing `roots` for `consumer`. */
export function planKernel(roots: readonly Node[], consumer: Consumer): KernelPlan {
  const b = new Builder();
  const el = elementCode(b, roots);
  const [r0] = el.roots;
  let run: string[];
  let end: string[] = [];
  /** Per-job, per-thread state: [name, initial value expression]. */
  let state: [string, string][] = [];
  const c = consumer;
  switch (c.kind) {
    case 'store': {
      const o = b.view(c.out);
      run = elementLoop(el, 'start', 'end', [`${o}[i] = ${r0};`]);
      break;
    }
    case 'encode': {
      const o = b.view(c.out);
      const write =
        c.format === 'F32'
          ? [`${o}[i] = ${r0};`]
          : c.format === 'BF16'
            ? [bitsOf(r0, 'u'), `${o}[i] = ${bf16Of('u')};`]
            : [bitsOf(r0, 'u'), 'let h = 0;', ...f16Of('u', 'h'), `${o}[i] = h;`];
      run = elementLoop(el, 'start', 'end', write);
      break;
    }
    case 'sumAbs': {
      const res = b.view(c.res);
      const n = el.roots.length;
      run = [
        `let ${el.roots.map((_, r) => `s${r} = 0`).join(', ')};`,
        ...elementLoop(
          el,
          'start',
          'end',
          el.roots.map((v, r) => `s${r} += Math.abs(${v});`),
        ),
        ...el.roots.map((_, r) => `${res}[chunk * ${n} + ${r}] = s${r};`),
      ];
      break;
    }
    case 'dots': {
      const res = b.view(c.res);
      const n = el.roots.length;
      const pairs: [number, number][] = [];
      for (let i = 0; i < n; i++) for (let j = i; j < n; j++) pairs.push([i, j]);
      run = [
        `let ${pairs.map((_, q) => `s${q} = 0`).join(', ')};`,
        `const at = chunk * ${pairs.length};`,
        ...elementLoop(
          el,
          'start',
          'end',
          pairs.map(([i, j], q) => `s${q} += ${el.roots[i]} * ${el.roots[j]};`),
        ),
        ...pairs.map((_, q) => `${res}[at + ${q}] = s${q};`),
      ];
      break;
    }
    case 'rowDots': {
      const res = b.view(c.res);
      const rl = b.param(c.rowLen);
      const n = el.roots.length;
      const pairs: [number, number][] = [];
      for (let i = 0; i < n; i++) for (let j = i; j < n; j++) pairs.push([i, j]);
      run = [
        'for (let r = start; r < end; r++) {',
        `  let ${pairs.map((_, q) => `s${q} = 0`).join(', ')};`,
        ...indent(elementLoop(el, `r * ${rl}`, `(r + 1) * ${rl}`, pairs.map(([i, j], q) => `s${q} += ${el.roots[i]} * ${el.roots[j]};`)), '  '),
        ...pairs.flatMap(([i, j], q) => [`  ${res}[r * ${n * n} + ${i * n + j}] = s${q};`, ...(i !== j ? [`  ${res}[r * ${n * n} + ${j * n + i}] = s${q};`] : [])]),
        '}',
      ];
      break;
    }
    case 'histogram': {
      const res = b.view(c.res);
      const s = c.selectors.length;
      const sel = c.selectors.map((x) => ({ prefix: b.param(x.prefix), mask: b.param(x.mask), shift: b.param(x.shift) }));
      state = [['h', `scratch('histogram', Uint32Array, ${s * c.bins}).fill(0)`]];
      run = elementLoop(el, 'start', 'end', [
        keyOf(r0, 'key'),
        ...sel.map((x, k) => `if ((key & ${x.mask}) === ${x.prefix}) h[${k * c.bins} + ((key >>> ${x.shift}) & ${c.bins - 1})]++;`),
      ]);
      end = [`const at = slot * ${s * c.bins};`, `for (let k = 0; k < ${s * c.bins}; k++) ${res}[at + k] = h[k];`];
      break;
    }
    case 'keyCount': {
      const res = b.view(c.res);
      const below = c.below ? b.view(c.below) : undefined;
      const keys = c.keys.map((k) => b.param(k));
      const counters = keys.map((_, k) => `n${k} = 0${below ? `, m${k} = 0` : ''}`);
      run = [
        `let ${counters.join(', ')};`,
        ...elementLoop(el, 'start', 'end', [keyOf(r0, 'key'), ...keys.map((k, j) => `if (key === ${k}) n${j}++;${below ? ` else if (key < ${k}) m${j}++;` : ''}`)]),
        ...keys.map((_, j) => `${res}[chunk * ${keys.length} + ${j}] = n${j};`),
        ...(below ? keys.map((_, j) => `${below}[chunk * ${keys.length} + ${j}] = m${j};`) : []),
      ];
      break;
    }
    case 'keyFind': {
      const res = b.view(c.res);
      const key = b.param(c.key);
      run = [`let left = ${b.param(c.nth)};`, ...elementLoop(el, 'start', 'end', [keyOf(r0, 'key'), `if (key === ${key}) { if (left === 0) { ${res}[0] = i; ${res}[1] = 1; return; } left--; }`])];
      break;
    }
    case 'gather': {
      const index = b.view(c.index);
      const keys = b.view(c.keys);
      run = gatherLoop(el, index, 'start', 'end', [keyOf(r0, 'key'), `${keys}[k] = key;`]);
      break;
    }
    case 'collect': {
      const below = b.view(c.below);
      const table = b.view(c.table);
      const ci = b.view(c.candIndex);
      const ck = b.view(c.candKey);
      const cap = b.param(c.capacity);
      const w = c.windows.map(([lo, hi]) => [b.param(lo), b.param(hi)]);
      const inside = w.map(([lo, hi]) => `(key >= ${lo} && key <= ${hi})`).join(' || ');
      run = [
        `const at = state.slot * ${cap};`,
        'let put = state.pos;',
        'const first = put;',
        `let ${w.map((_, k) => `b${k} = 0`).join(', ')};`,
        ...elementLoop(el, 'start', 'end', [
          keyOf(r0, 'key'),
          ...w.map(([lo], k) => `if (key < ${lo}) b${k}++;`),
          `if (${inside}) { if (put < ${cap}) { ${ci}[at + put] = i; ${ck}[at + put] = key; } put++; }`,
        ]),
        ...w.map((_, k) => `${below}[chunk * ${w.length} + ${k}] = b${k};`),
        `${table}[chunk * 3] = state.slot;`,
        `${table}[chunk * 3 + 1] = first;`,
        `${table}[chunk * 3 + 2] = put - first;`,
        'state.pos = put;',
      ];
      state = [['pos', '0']];
      break;
    }
    case 'ranked': {
      const rl = b.param(c.rowLen);
      const thresholds = b.view(c.thresholds);
      const mask = b.view(c.mask);
      const seedHash = b.param(c.seedHash);
      const monotone = c.monotone ? 'true' : 'false';
      state = [['keys', `scratch('ranked keys', Uint32Array, ${c.rowLen})`]];
      const norms = c.norms ? b.view(c.norms.res) : undefined;
      const ch = c.norms ? b.param(c.norms.chunk) : '';
      // Norms: the row's |x| are its keys' f32 values; the kept ones are the keys masked to +0.
      const sums = norms
        ? [
            `  for (let i = 0; i < ${rl}; i++) {`,
            `    if (i0 + i === next) { ${norms}[at] = sx; ${norms}[at + 1] = sk; at += 2; next += ${ch}; sx = 0; sk = 0; }`,
            `    keptBits[i] = keys[i] & -${mask}[i0 + i];`,
            '    sx += absX[i];',
            '    sk += keptX[i];',
            '  }',
          ]
        : [];
      if (norms) state.push(['keptBits', `scratch('ranked kept bits', Uint32Array, ${c.rowLen})`]);
      run = [
        ...(norms
          ? [
              `const absX = new Float32Array(keys.buffer, keys.byteOffset, ${rl}), keptX = new Float32Array(keptBits.buffer, keptBits.byteOffset, ${rl});`,
              `let at = 2 * Math.floor((start * ${rl}) / ${ch}), next = (at / 2 + 1) * ${ch}, sx = 0, sk = 0;`,
            ]
          : []),
        'for (let r = start; r < end; r++) {',
        `  const i0 = r * ${rl};`,
        '  let keyOr = 0, keyAnd = 0x7fffffff;',
        ...indent(elementLoop(el, 'i0', `i0 + ${rl}`, [keyOf(r0, 'key'), 'keys[i - i0] = key;', 'keyOr |= key;', 'keyAnd &= key;']), '  '),
        `  keepRankedRow(keys, ${rl}, i0, (keyOr ^ keyAnd) >>> 0, ${seedHash}, ${thresholds}, ${monotone}, ${mask});`,
        ...sums,
        '}',
        ...(norms ? [`if (end > start) { ${norms}[at] = sx; ${norms}[at + 1] = sk; }`] : []),
      ];
      break;
    }
    default:
      return assertNever(c);
  }
  const unpack = state.length > 0 ? [`const { ${state.map(([name]) => name).join(', ')} } = state;`] : [];
  const source = [
    `// kernel: ${c.kind} of ${roots.length} root(s) over ${el.body.length} statement(s) per element`,
    "'use strict';",
    'const { TB, TH, keepRankedRow, scratch } = rt;',
    'const fr = Math.fround;',
    'const S = new Float32Array(1), SU = new Uint32Array(S.buffer);',
    'function begin(slot) {',
    `  return { ${['slot', ...state.map(([name, init]) => `${name}: ${init}`)].join(', ')} };`,
    '}',
    'function run(v, p, state, start, end, chunk) {',
    ...indent(b.header(run), '  '),
    ...indent(unpack, '  '),
    ...indent(run, '  '),
    '}',
    'function end(v, p, state, slot) {',
    ...indent(b.header(end), '  '),
    ...indent(end.length > 0 ? unpack : [], '  '),
    ...indent(end, '  '),
    '}',
    'return { begin, run, end };',
  ].join('\n');
  return { source, bindings: b.bindings, params: Float64Array.from(b.params) };
}

/** Every data node under `roots` (their storages are what a kernel reads). */
export function dataLeaves(roots: readonly Node[]): Node[] {
  return topoOrder(roots).filter((n) => n.op.kind === 'data');
}

/** The inputs a node is computed from (for the cost rule's walk). */
export { inputsOf };

export { VIEW_CTOR };

/**
 * Lazy elementwise expressions: the values of a fast-backend tensor are a DAG of nodes over stored
 * data, computed only when something needs them (an encode, a read, a reduction, a selection, a
 * row-wise op). Each node's op is the reference op's math for one element (codegen.ts turns a DAG
 * into a loop); once computed into storage a node becomes a `data` node in place, so every tensor
 * built on it reads the stored values from then on.
 *
 * Nodes are reference counted: a tensor handle holds its node, a node holds its inputs, a data node
 * holds its storage. The last release frees storage back to the pool at once (peak memory stays a
 * function of what is live, not of when the garbage collector runs).
 */
import type { FloatDType } from '../../core/dtype.ts';
import type { Storage } from './buffers.ts';

/** How a data node's bytes encode values: the float formats, or 0/1 keep masks in bytes. */
export type DataFormat = FloatDType | 'U8';

/** A term of a lazy lincomb. `coef` is already f32 (per row: one entry per row of `rowLen`). */
export interface LinTerm {
  x: Node;
  coef: number | Float32Array;
}

/**
 * Bounds of a magnitude-rank band in key order (key = f32 bits of |x|, ties by index): an element
 * (key, i) is kept when it is at or above (loKey, loIndex) and below (hiKey, hiIndex). A missing
 * side is open.
 */
export interface Band {
  lo?: { key: number; index: number };
  hi?: { key: number; index: number };
}

export type Op =
  | { kind: 'data'; storage: Storage; format: DataFormat }
  | { kind: 'fill'; value: number }
  | { kind: 'lincomb'; terms: LinTerm[]; bias: number; rowLen: number }
  | { kind: 'quantize'; x: Node; dtype: FloatDType }
  | { kind: 'nearswap'; base: Node; x: Node; t: number }
  | { kind: 'absAtLeast'; a: Node; b: Node; lambda: number }
  | { kind: 'multiply'; a: Node; b: Node }
  | { kind: 'divideAtLeast'; a: Node; b: Node; floor: number }
  | { kind: 'expAffine'; x: Node; shift: number; scale: number; bias: number }
  | { kind: 'rampAbove'; x: Node; threshold: number; scale: number }
  /** keep where the counter-based uniform (hash prefix `seedHash`, element index) is below threshold/2^24 */
  | { kind: 'keepRandom'; x: Node; seedHash: number; threshold: number }
  | { kind: 'keepWhere'; x: Node; mask: Node }
  | { kind: 'keepBand'; x: Node; band: Band }
  | { kind: 'signElect'; xs: Node[]; weights: number[]; normalize: boolean };

export function inputsOf(op: Op): Node[] {
  switch (op.kind) {
    case 'data':
    case 'fill':
      return [];
    case 'lincomb':
      return op.terms.map((t) => t.x);
    case 'quantize':
    case 'keepRandom':
    case 'keepBand':
    case 'expAffine':
    case 'rampAbove':
      return [op.x];
    case 'nearswap':
      return [op.base, op.x];
    case 'absAtLeast':
    case 'multiply':
    case 'divideAtLeast':
      return [op.a, op.b];
    case 'keepWhere':
      return [op.x, op.mask];
    case 'signElect':
      return op.xs;
    default:
      return assertNever(op);
  }
}

export function assertNever(x: never): never {
  throw new Error(`fast cpu backend: unexpected ${JSON.stringify(x)}`);
}

/** Bytes one element of a data node occupies. */
export function formatBytes(format: DataFormat): number {
  return format === 'F32' ? 4 : format === 'U8' ? 1 : 2;
}

export class Node {
  readonly numel: number;
  op: Op;
  /** Handles and parent nodes holding this node. */
  #refs = 0;
  /** Consumer passes (encode, reduction, selection, ...) that computed this node from its inputs. */
  evaluations = 0;

  constructor(numel: number, op: Op) {
    this.numel = numel;
    this.op = op;
    for (const x of inputsOf(op)) x.retain();
  }

  get isData(): boolean {
    return this.op.kind === 'data';
  }

  retain(): this {
    this.#refs++;
    return this;
  }

  /** Drop one reference; the last frees the node's storage and drops its inputs. */
  drop(): void {
    if (this.#refs <= 0) return;
    if (--this.#refs > 0) return;
    const op = this.op;
    if (op.kind === 'data') op.storage.drop();
    else for (const x of inputsOf(op)) x.drop();
    this.op = { kind: 'fill', value: 0 };
  }

  /** Becomes stored data (after a kernel filled `storage`): inputs are dropped, parents see the data. */
  settle(storage: Storage, format: DataFormat): void {
    const old = this.op;
    this.op = { kind: 'data', storage, format };
    if (old.kind === 'data') old.storage.drop();
    else for (const x of inputsOf(old)) x.drop();
  }
}

/** Nodes reachable from `roots` that are computed (not data), inputs before users, each once. */
export function topoOrder(roots: readonly Node[]): Node[] {
  const seen = new Set<Node>();
  const order: Node[] = [];
  const visit = (n: Node) => {
    if (seen.has(n)) return;
    seen.add(n);
    for (const x of inputsOf(n.op)) visit(x);
    order.push(n);
  };
  // Iterative deepening is not needed: DAGs here are tens of nodes deep at most (the cost rule
  // stores long chains before they grow).
  for (const r of roots) visit(r);
  return order;
}

/**
 * What evaluating `roots` from their data costs per element, in bytes read plus one unit per
 * computed node: the measure of the materialization rule (see fast-backend.ts).
 */
export function evaluationCost(roots: readonly Node[]): { cost: number; leaves: number; nodes: number } {
  let cost = 0;
  let leaves = 0;
  let nodes = 0;
  for (const n of topoOrder(roots)) {
    if (n.op.kind === 'data') {
      leaves++;
      cost += formatBytes(n.op.format);
    } else {
      nodes++;
      cost += n.op.kind === 'signElect' ? n.op.xs.length : 1;
    }
  }
  return { cost, leaves, nodes };
}

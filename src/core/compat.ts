/**
 * Can these models be merged? Decided from headers and configs only, before any tensor byte is read:
 * same architecture (`model_type`), same tensor names, same shapes. Embedding matrices whose vocab
 * sizes differ are not an error: like the reference, the merge cuts them (METHODS.md "Shapes"), and
 * the report says how. Dtype differences are notes: every input is decoded to f32 for the math.
 */
import type { TensorInfo } from './source.ts';
import { isEmbeddingName } from './tensor-names.ts';

export interface CompatModel {
  /** For messages: path or `org/name@revision`. */
  id: string;
  tensors: ReadonlyMap<string, TensorInfo>;
  config: Record<string, unknown> | null;
}

export type CompatProblemKind = 'no-tensors' | 'model-type' | 'missing-tensors' | 'shape' | 'vocab';

export interface CompatProblem {
  kind: CompatProblemKind;
  /** The model the problem is in. */
  model: string;
  /** The tensor, for 'shape' and 'vocab'. */
  tensor?: string;
  /** Every tensor concerned, for 'missing-tensors' (the message lists the first few). */
  tensors?: string[];
  message: string;
}

export interface CompatReport {
  /** No problems (notes do not count). */
  ok: boolean;
  problems: CompatProblem[];
  notes: string[];
}

export interface CompatOptions {
  /** The model others are compared with (the recipe's base_model, else the first). @default 0 */
  baseIndex?: number;
  /**
   * How embeddings of different vocab sizes will be cut. 'base': to the base's rows (task-vector
   * methods): a model with fewer rows than the base is a problem. 'common': to the rows all models
   * have (interpolations). @default 'base'
   */
  embeddingRows?: 'base' | 'common';
}

/** How many names a message lists before "and N more". */
const LISTED = 5;

export function checkCompatibility(models: readonly CompatModel[], opts: CompatOptions = {}): CompatReport {
  const baseIndex = opts.baseIndex ?? 0;
  const rowsPolicy = opts.embeddingRows ?? 'base';
  if (models.length === 0) return { ok: true, problems: [], notes: [] };
  if (!Number.isInteger(baseIndex) || baseIndex < 0 || baseIndex >= models.length) {
    throw new RangeError(`checkCompatibility: baseIndex ${baseIndex} is not the index of one of the ${models.length} models`);
  }
  const base = models[baseIndex];
  const problems: CompatProblem[] = [];
  const notes: string[] = [];

  for (const m of models) {
    if (m.tensors.size === 0) problems.push({ kind: 'no-tensors', model: m.id, message: `${m.id} has no tensors` });
  }

  checkModelTypes(models, base, problems, notes);

  // Names: every model should have every tensor some model has.
  const allNames = new Set<string>();
  for (const m of models) for (const name of m.tensors.keys()) allNames.add(name);
  for (const m of models) {
    if (m.tensors.size === 0) continue;
    const missing = [...allNames].filter((name) => !m.tensors.has(name));
    if (missing.length === 0) continue;
    const owners = models.filter((o) => o !== m && o.tensors.has(missing[0])).map((o) => o.id);
    problems.push({
      kind: 'missing-tensors',
      model: m.id,
      tensors: missing,
      message:
        `${m.id} lacks ${missing.length} tensor${missing.length === 1 ? '' : 's'} that other models have: ` +
        `${listSome(missing)} (e.g. "${missing[0]}" is in ${listSome(owners, 3)})`,
    });
  }

  // Shapes, against the base; embeddings may differ in rows only.
  for (const [name, baseInfo] of base.tensors) {
    const embedding = isEmbeddingName(name) && baseInfo.shape.length === 2;
    const rows: { id: string; rows: number }[] = [{ id: base.id, rows: baseInfo.shape[0] }];
    for (const m of models) {
      if (m === base) continue;
      const info = m.tensors.get(name);
      if (!info || sameShape(info.shape, baseInfo.shape)) continue;
      if (embedding && info.shape.length === 2 && info.shape[1] === baseInfo.shape[1]) {
        rows.push({ id: m.id, rows: info.shape[0] });
        continue;
      }
      problems.push({
        kind: 'shape',
        model: m.id,
        tensor: name,
        message: `${name}: ${m.id} has shape ${formatShape(info.shape)}, the base ${base.id} has ${formatShape(baseInfo.shape)}`,
      });
    }
    if (rows.length > 1) vocabNote(name, rows, rowsPolicy, problems, notes);
  }
  // Tensors the base lacks have no base shape; compare them with their first owner.
  for (const name of allNames) {
    if (base.tensors.has(name)) continue;
    const owners = models.filter((m) => m.tensors.has(name));
    const first = owners[0].tensors.get(name)!;
    for (const m of owners.slice(1)) {
      const info = m.tensors.get(name)!;
      if (sameShape(info.shape, first.shape)) continue;
      problems.push({
        kind: 'shape',
        model: m.id,
        tensor: name,
        message: `${name}: ${m.id} has shape ${formatShape(info.shape)}, ${owners[0].id} has ${formatShape(first.shape)}`,
      });
    }
  }

  dtypeNotes(models, base, notes);
  return { ok: problems.length === 0, problems, notes };
}

function checkModelTypes(models: readonly CompatModel[], base: CompatModel, problems: CompatProblem[], notes: string[]): void {
  const typeOf = (m: CompatModel): string | null => {
    const t = m.config?.model_type;
    return typeof t === 'string' && t !== '' ? t : null;
  };
  const unknown = models.filter((m) => typeOf(m) === null).map((m) => m.id);
  if (unknown.length > 0) {
    notes.push(`no model_type in the config of ${listSome(unknown)}: the architecture is checked from tensor names and shapes only`);
  }
  const baseType = typeOf(base);
  if (baseType === null) return;
  for (const m of models) {
    const t = typeOf(m);
    if (m === base || t === null || t === baseType) continue;
    problems.push({
      kind: 'model-type',
      model: m.id,
      message: `${m.id} is a "${t}" model, the base ${base.id} is "${baseType}": different architectures cannot be merged`,
    });
  }
}

function vocabNote(
  name: string,
  rows: { id: string; rows: number }[],
  policy: 'base' | 'common',
  problems: CompatProblem[],
  notes: string[],
): void {
  const [base, ...others] = rows;
  const sizes = rows.map((r) => `${r.id} ${r.rows}`).join(', ');
  if (policy === 'common') {
    const common = Math.min(...rows.map((r) => r.rows));
    notes.push(`${name}: vocab sizes differ (${sizes} rows); every model is cut to the ${common} rows all have, as the reference does`);
    return;
  }
  const fewer = others.filter((r) => r.rows < base.rows);
  for (const r of fewer) {
    problems.push({
      kind: 'vocab',
      model: r.id,
      tensor: name,
      message:
        `${name}: ${r.id} has ${r.rows} rows, fewer than the base ${base.id}'s ${base.rows}; ` +
        'task-vector methods need the base\'s rows in every model (choose a base with the smallest vocab, or an interpolating method)',
    });
  }
  if (fewer.length < others.length) {
    notes.push(`${name}: vocab sizes differ (${sizes} rows); larger ones are cut to the base's ${base.rows} rows, as the reference does`);
  }
}

function dtypeNotes(models: readonly CompatModel[], base: CompatModel, notes: string[]): void {
  for (const m of models) {
    if (m === base) continue;
    const pairs = new Map<string, number>();
    for (const [name, info] of m.tensors) {
      const b = base.tensors.get(name);
      if (!b || b.dtype === info.dtype) continue;
      const key = `${b.dtype} -> ${info.dtype}`;
      pairs.set(key, (pairs.get(key) ?? 0) + 1);
    }
    for (const [pair, count] of pairs) {
      const [from, to] = pair.split(' -> ');
      notes.push(
        `dtypes differ: ${count} tensor${count === 1 ? '' : 's'} of ${m.id} ${count === 1 ? 'is' : 'are'} ${to} where the base ${base.id} has ${from}; inputs are decoded to f32 for the math`,
      );
    }
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function listSome(items: readonly string[], max = LISTED): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

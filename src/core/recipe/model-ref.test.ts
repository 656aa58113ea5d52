import { describe, expect, it } from 'vitest';
import { isAbsolutePath, ModelRefError, parseModelRef, resolveModelRef } from './model-ref.ts';

describe('parseModelRef', () => {
  it.each([
    ['org/name', { kind: 'hub', repo: 'org/name' }],
    ['gpt2', { kind: 'hub', repo: 'gpt2' }],
    ['meta-llama/Llama-3.1-8B', { kind: 'hub', repo: 'meta-llama/Llama-3.1-8B' }],
    ['org/name@main', { kind: 'hub', repo: 'org/name', revision: 'main' }],
    ['org/name@refs/pr/3', { kind: 'hub', repo: 'org/name', revision: 'refs/pr/3' }],
    ['Org_1/my.model_v2@0123abcd', { kind: 'hub', repo: 'Org_1/my.model_v2', revision: '0123abcd' }],
  ])('%s', (ref, expected) => {
    expect(parseModelRef(ref)).toEqual(expected);
  });

  it.each([
    ['', 'the repo id is empty'],
    ['@main', 'the repo id is empty'],
    ['org/name@', 'the revision after "@" is empty'],
    ['org/name@my branch', 'the revision contains white space'],
    ['a/b/c', '3 parts separated by "/" (at most 2: org/name)'],
    ['org/-name', '"-name" may only use letters, digits, "_", "-" and ".", and must start and end with a letter, digit or "_"'],
    ['org/na me', '"na me" may only use letters'],
    ['org/na--me', '"na--me" contains "--" or ".."'],
    ['org/name+lora/adapter', '"+" joins a model and a LoRA adapter (model+adapter): resolve each part on its own (splitAdapterRef)'],
    [`org/${'x'.repeat(97)}`, 'the name is 97 characters long (at most 96)'],
  ])('rejects %j', (ref, reason) => {
    expect(() => parseModelRef(ref)).toThrow(ModelRefError);
    expect(() => parseModelRef(ref)).toThrow(reason);
  });

  it('names the reference in the message', () => {
    expect(() => parseModelRef('a/b/c')).toThrow('model "a/b/c": not a Hub repo id (org/name[@revision]): ');
  });
});

describe('resolveModelRef', () => {
  const posixJoin = (a: string, b: string) => `${a.replace(/\/+$/, '')}/${b}`;
  const fs = (paths: string[]) => {
    const set = new Set(paths);
    return { exists: (p: string) => set.has(p), join: posixJoin };
  };

  it('prefers the recipe folder, then the working directory', () => {
    const files = fs(['/recipes/models/a', '/work/models/a', '/work/models/b']);
    const opts = { ...files, recipeDir: '/recipes', cwd: '/work' };
    expect(resolveModelRef('models/a', opts)).toEqual({ kind: 'local', path: '/recipes/models/a' });
    expect(resolveModelRef('models/b', opts)).toEqual({ kind: 'local', path: '/work/models/b' });
  });

  it('treats an existing org/name-looking folder as local (as mergekit does)', () => {
    const opts = { ...fs(['/r/org/name']), recipeDir: '/r', cwd: '/w' };
    expect(resolveModelRef('org/name', opts)).toEqual({ kind: 'local', path: '/r/org/name' });
  });

  it('takes absolute paths as they are', () => {
    const opts = { ...fs(['/abs/model']), recipeDir: '/r', cwd: '/w' };
    expect(resolveModelRef('/abs/model', opts)).toEqual({ kind: 'local', path: '/abs/model' });
  });

  it('tries the reference as given when no cwd is passed', () => {
    expect(resolveModelRef('rel/model', fs(['rel/model']))).toEqual({ kind: 'local', path: 'rel/model' });
  });

  it('falls back to a Hub repo when nothing exists', () => {
    const opts = { ...fs([]), recipeDir: '/r', cwd: '/w' };
    expect(resolveModelRef('org/name@v1', opts)).toEqual({ kind: 'hub', repo: 'org/name', revision: 'v1' });
  });

  it('says where it looked for a missing local path', () => {
    const opts = { ...fs([]), recipeDir: '/r', cwd: '/w' };
    expect(() => resolveModelRef('../models/x', opts)).toThrow(
      'model "../models/x": no such local path (looked for /r/../models/x, /w/../models/x)',
    );
    expect(() => resolveModelRef('/abs/missing', opts)).toThrow('model "/abs/missing": no such local path (looked for /abs/missing)');
    expect(() => resolveModelRef('a/b/c', opts)).toThrow(
      'model "a/b/c": no such local path (looked for /r/a/b/c, /w/a/b/c), and not a Hub repo id (org/name[@revision]): ' +
        '3 parts separated by "/" (at most 2: org/name)',
    );
  });
});

describe('isAbsolutePath', () => {
  it.each([
    ['/x', true],
    ['C:\\models', true],
    ['d:/models', true],
    ['\\\\server\\share', true],
    ['models/x', false],
    ['./x', false],
    ['org/name', false],
  ])('%s → %s', (p, abs) => {
    expect(isAbsolutePath(p)).toBe(abs);
  });
});

import { describe, expect, it } from 'vitest';
import { decodeRecipeHash, encodeRecipeHash, fromBase64Url, RecipeLinkError, toBase64Url } from './recipe-link.ts';

const YAML = `models:
  - model: org/expert-1
    parameters: {weight: 0.5, density: [1, 0.7, 0.1]}
merge_method: ties
base_model: org/base
# comment with non-ASCII: é 模型 🙂
`;

describe('recipe link', () => {
  it('encodes as Node does for base64url (independent reference), without padding', () => {
    for (const text of ['', 'a', 'ab', 'abc', 'abcd', YAML, '\u00ff\u00fe?>>>???']) {
      const bytes = new TextEncoder().encode(text);
      expect(toBase64Url(bytes)).toBe(Buffer.from(bytes).toString('base64url'));
    }
  });

  it('decodes every byte value back, with or without padding', () => {
    const all = new Uint8Array(256).map((_, i) => i);
    const text = Buffer.from(all).toString('base64url');
    expect([...fromBase64Url(text)]).toEqual([...all]);
    expect([...fromBase64Url(Buffer.from([1, 2]).toString('base64'))]).toEqual([1, 2]);
  });

  it('round-trips a recipe through the hash, including non-ASCII text', () => {
    const hash = encodeRecipeHash(YAML);
    expect(hash.startsWith('#recipe=')).toBe(true);
    expect(hash.slice('#recipe='.length)).not.toMatch(/[+/=]/);
    expect(decodeRecipeHash(hash)).toBe(YAML);
    expect(decodeRecipeHash(`#other=1&${hash.slice(1)}`)).toBe(YAML);
  });

  it('has no recipe in an empty or unrelated hash', () => {
    expect(decodeRecipeHash('')).toBeNull();
    expect(decodeRecipeHash('#')).toBeNull();
    expect(decodeRecipeHash('#section-2')).toBeNull();
  });

  it('reports a damaged link in words', () => {
    expect(() => decodeRecipeHash('#recipe=not*base64')).toThrow(RecipeLinkError);
    expect(() => decodeRecipeHash('#recipe=not*base64')).toThrow(/not base64url/);
    expect(() => decodeRecipeHash('#recipe=A')).toThrow(/truncated/);
    // 0xff 0xfe is not UTF-8.
    expect(() => decodeRecipeHash('#recipe=__4')).toThrow(/not UTF-8/);
  });
});

/**
 * The recipe in the page URL: `#recipe=<base64url of the YAML>`, so a link restores the whole setup.
 * Only the recipe's YAML goes in (model references, method, parameters); access tokens live in the
 * settings and never in a recipe, so they cannot leak through a shared link.
 */

export const RECIPE_HASH_KEY = 'recipe';

/** The `#recipe=` fragment cannot be read back (not base64url, or not UTF-8 text). */
export class RecipeLinkError extends Error {
  constructor(reason: string) {
    super(`the recipe in the link cannot be read: ${reason}`);
    this.name = 'RecipeLinkError';
  }
}

/** UTF-8 bytes → base64url without padding (RFC 4648 §5). */
export function toBase64Url(bytes: Uint8Array): string {
  let binary = '';
  // Chunked: String.fromCharCode(...bytes) overflows the argument limit on long recipes.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** base64url (padding optional) → bytes; throws RecipeLinkError on other characters. */
export function fromBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*={0,2}$/.test(text)) throw new RecipeLinkError('it holds characters that are not base64url');
  const plain = text.replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
  if (plain.length % 4 === 1) throw new RecipeLinkError('its base64url text is truncated');
  const padded = plain + '='.repeat((4 - (plain.length % 4)) % 4);
  const binary = atob(padded);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** `#recipe=...` for a recipe's YAML. */
export function encodeRecipeHash(yaml: string): string {
  return `#${RECIPE_HASH_KEY}=${toBase64Url(new TextEncoder().encode(yaml))}`;
}

/**
 * The YAML in a location hash (`#recipe=...`, possibly among other `&`-separated entries), or null
 * when the hash holds no recipe. Throws RecipeLinkError when it holds one that cannot be decoded.
 */
export function decodeRecipeHash(hash: string): string | null {
  const body = hash.startsWith('#') ? hash.slice(1) : hash;
  for (const part of body.split('&')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq) !== RECIPE_HASH_KEY) continue;
    const bytes = fromBase64Url(part.slice(eq + 1));
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new RecipeLinkError('it is not UTF-8 text');
    }
  }
  return null;
}

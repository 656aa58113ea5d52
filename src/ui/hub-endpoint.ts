/**
 * The Hub endpoint setting: checked when typed, and taken from the page address's `?hub=` parameter
 * (`?hub=http://host:port`), so a link can point the studio at a mirror or a local Hub. Only the
 * endpoint travels in a link: an address that carries credentials is refused, never used.
 */

export const HUB_PARAM = 'hub';

/**
 * The endpoint normalized (no trailing slash), or a problem in words: it must be an absolute http(s)
 * URL without credentials, query or fragment (a mirror may live under a path).
 */
export function checkHubEndpoint(text: string): { url: string } | { problem: string } {
  const trimmed = text.trim();
  if (trimmed === '') return { problem: 'give the Hub address, such as https://huggingface.co' };
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    return { problem: 'it is not a web address (such as https://huggingface.co or http://localhost:8080)' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { problem: 'the Hub address must start with http:// or https://' };
  }
  // Credentials in an address end up in logs and shared links: the token belongs in its own field.
  if (url.username !== '' || url.password !== '') {
    return { problem: 'the Hub address holds a user name or password: give the address alone, and the token in the token field' };
  }
  if (url.search !== '' || url.hash !== '') {
    return { problem: 'the Hub address cannot have a query (?…) or a fragment (#…)' };
  }
  return { url: `${url.origin}${url.pathname}`.replace(/\/+$/, '') };
}

/**
 * The endpoint of a page address's query (`location.search`): null when there is no `hub`
 * parameter, else the check's result. Problems never repeat the address: a refused one may hold a secret.
 */
export function hubEndpointFromSearch(search: string): { url: string } | { problem: string } | null {
  const value = new URLSearchParams(search).get(HUB_PARAM);
  if (value === null) return null;
  const checked = checkHubEndpoint(value);
  if ('problem' in checked) return { problem: `The link's ?${HUB_PARAM}= was not used: ${checked.problem}` };
  return checked;
}

import { describe, expect, it } from 'vitest';
import { checkHubEndpoint, hubEndpointFromSearch } from './hub-endpoint.ts';

describe('the Hub endpoint setting', () => {
  it('takes http(s) addresses, with a path for mirrors, without the trailing slash', () => {
    expect(checkHubEndpoint(' http://127.0.0.1:8080/ ')).toEqual({ url: 'http://127.0.0.1:8080' });
    expect(checkHubEndpoint('https://hf-mirror.com')).toEqual({ url: 'https://hf-mirror.com' });
    expect(checkHubEndpoint('https://mirror.example.org/hf//')).toEqual({ url: 'https://mirror.example.org/hf' });
  });

  it('refuses other schemes, non-addresses, queries and credentials, never repeating the address', () => {
    const problem = (text: string) => {
      const r = checkHubEndpoint(text);
      return 'problem' in r ? r.problem : null;
    };
    expect(problem('')).toMatch(/give the Hub address/);
    expect(problem('huggingface.co')).toMatch(/not a web address/);
    expect(problem('ftp://example.org')).toMatch(/http:\/\/ or https:\/\//);
    expect(problem('javascript:alert(1)')).toMatch(/http:\/\/ or https:\/\//);
    expect(problem('https://hf_secret@mirror.example.org')).toMatch(/user name or password/);
    expect(problem('https://user:hf_secret@mirror.example.org')).not.toContain('hf_secret');
    expect(problem('https://mirror.example.org/?token=hf_secret')).toMatch(/query/);
    expect(problem('https://mirror.example.org/?token=hf_secret')).not.toContain('hf_secret');
  });
});

describe('?hub= in the page address', () => {
  it('is absent, used, or refused in words', () => {
    expect(hubEndpointFromSearch('')).toBeNull();
    expect(hubEndpointFromSearch('?other=1')).toBeNull();
    expect(hubEndpointFromSearch('?hub=http://localhost:4321')).toEqual({ url: 'http://localhost:4321' });
    expect(hubEndpointFromSearch(`?x=1&hub=${encodeURIComponent('https://mirror.example.org/hf/')}`)).toEqual({ url: 'https://mirror.example.org/hf' });
    const refused = hubEndpointFromSearch('?hub=https://user:hf_secret@mirror.example.org');
    expect(refused).toEqual({ problem: expect.stringMatching(/^The link's \?hub= was not used: .*user name or password/) });
    expect(JSON.stringify(refused)).not.toContain('hf_secret');
  });
});

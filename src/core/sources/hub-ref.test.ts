import { describe, expect, it } from 'vitest';
import { HubAccessError, HubApiError, HubNotFoundError, HubRefError, displayUrl, redactSecret } from './hub-errors.ts';
import { isCommitSha, parseHubRef } from './hub-ref.ts';

describe('parseHubRef', () => {
  it('splits repo and revision, defaulting to main', () => {
    expect(parseHubRef('meta-llama/Llama-3.1-8B')).toEqual({ repo: 'meta-llama/Llama-3.1-8B', revision: 'main' });
    expect(parseHubRef('gpt2')).toEqual({ repo: 'gpt2', revision: 'main' });
    expect(parseHubRef('org/name@v1.0')).toEqual({ repo: 'org/name', revision: 'v1.0' });
    expect(parseHubRef('org/name@refs/pr/3')).toEqual({ repo: 'org/name', revision: 'refs/pr/3' });
    const sha = '0123456789abcdef0123456789abcdef01234567';
    expect(parseHubRef(`org/my_model.v2@${sha}`)).toEqual({ repo: 'org/my_model.v2', revision: sha });
  });

  it.each([
    ['', /repo id is empty/],
    ['a/b/c', /not 3 parts/],
    ['/name', /empty org or name/],
    ['org/', /empty org or name/],
    ['org/na me', /may only hold/],
    ['org/-name', /may not start or end/],
    ['org/name.', /may not start or end/],
    ['org/a--b', /"--" or "\.\."/],
    ['org/a..b', /"--" or "\.\."/],
    ['org/name.git', /\.git/],
    [`org/${'x'.repeat(97)}`, /longer than 96/],
    ['org/name@', /revision after "@" is empty/],
    ['org/name@dev branch', /characters git refuses/],
    ['org/name@a..b', /not a valid branch/],
    ['./models/local', /may only hold|not 3 parts|empty org/],
  ])('refuses %j with a reason', (ref, reason) => {
    const err = (() => {
      try {
        parseHubRef(ref);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(HubRefError);
    expect((err as HubRefError).message).toMatch(reason);
    expect((err as HubRefError).message).toContain(`"${ref}"`);
  });

  it('knows full commit ids', () => {
    expect(isCommitSha('0123456789abcdef0123456789abcdef01234567')).toBe(true);
    expect(isCommitSha('main')).toBe(false);
    expect(isCommitSha('0123456')).toBe(false);
  });
});

describe('Hub errors', () => {
  it('say what is missing and what to do', () => {
    expect(new HubNotFoundError('repo', { repo: 'o/n', revision: 'main' }, false).message).toBe(
      'o/n: no such model repo on the Hub (if it is private, give a token that can read it)',
    );
    expect(new HubNotFoundError('file', { repo: 'o/n', revision: 'v1', file: 'a.json' }, true).message).toBe('o/n@v1: no file "a.json" in this repo');
    // Private or missing: the Hub answers both alike, so the message names both, in the words of the request.
    expect(new HubNotFoundError('repo', { repo: 'o/n', revision: 'main' }, true).message).toBe(
      'o/n: no such model repo that this token can read (it does not exist, or it is private to an account the token does not belong to)',
    );
    // Gated: the fix is accepting the terms on the repo's page.
    expect(new HubAccessError('o/n', 401, false, 'gated', 'https://hf.test').message).toBe(
      'o/n: this repo is gated: accept its terms on the Hub and give a token of that account (no token was given; its page: https://hf.test/o/n; HTTP 401)',
    );
    expect(new HubAccessError('o/n', 403, true, 'gated', 'https://hf.test').message).toBe(
      "o/n: this repo is gated and the token given was refused: accept its terms on the Hub with the token's account (its page: https://hf.test/o/n; HTTP 403)",
    );
    expect(new HubAccessError('o/n', 403, true).message).toBe('o/n: the token given was refused: it cannot read this repo (no read access, or expired) (HTTP 403)');
    expect(new HubAccessError('o/n', 401, false).message).toBe('o/n: this repo needs access: give a token that can read it (no token was given; HTTP 401)');
  });

  it('HubApiError carries status, url and request id, and knows what is transient', () => {
    const e = new HubApiError('o/n: listing', 502, 'https://h/api', { requestId: 'Root=1-abc', serverMessage: 'bad gateway' });
    expect(e.message).toBe('o/n: listing: HTTP 502 from https://h/api ("bad gateway", request id Root=1-abc)');
    expect([e.status, e.requestId, e.transient]).toEqual([502, 'Root=1-abc', true]);
    expect(new HubApiError('x', 400, 'u').transient).toBe(false);
  });

  it('scrub a secret from messages and causes, and drop user info from URLs', () => {
    const inner = new Error('server said: token hf_abc is invalid');
    const outer = new Error('failed: hf_abc', { cause: inner });
    redactSecret(outer, 'hf_abc');
    expect(outer.message).toBe('failed: ***');
    expect(inner.message).toBe('server said: token *** is invalid');
    expect(outer.stack).not.toContain('hf_abc');
    expect(displayUrl('https://user:pw@hub.test/x?y=1')).toBe('https://hub.test/x?y=1');
    // Signed CDN URLs keep their shape but not their signature.
    expect(displayUrl('https://cdn.test/o?Expires=1&Signature=abc&X-Amz-Credential=k')).toBe('https://cdn.test/o?Expires=1&Signature=%E2%80%A6&X-Amz-Credential=%E2%80%A6');
  });
});

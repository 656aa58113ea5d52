/**
 * Reading from a Hub that behaves like the real one (src/cli/hub-server.ts with `cdn` and
 * `rateLimit`): `resolve` of weights redirects to a second origin at signed URLs that expire, and
 * `/resolve/` requests are rate-limited. The tree follows each file's redirect once, reads later ranges
 * from the CDN without the token, asks again when a URL is refused, waits out a 429, takes ETags from
 * `X-Linked-Etag`, and says which of gated, private and missing a repo is.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeHubRoot, type HubRoot } from '../../cli/hub-server.fixtures.ts';
import { startHubServer, type HubServer } from '../../cli/hub-server.ts';
import { openModel } from '../safetensors/model.ts';
import { HubAccessError, HubApiError, HubCdnRefusedError, HubNotFoundError } from './hub-errors.ts';
import { openHubTree, signedUrlExpiry, type OpenHubTreeParams } from './hub.ts';
import type { RetryPolicy } from './retry.ts';

const TOKEN = 'hf_cdnTestToken_42';
const USER = { name: 'carol', token: 'hf_carol_token_77' };
const OTHER = { name: 'dave', token: 'hf_dave_token_888' };
let fixture: HubRoot;
let server: HubServer;
/** The server's clock runs ahead of ours by this much (tests move it to expire URLs and rate windows). */
let skewMs = 0;
let local: Uint8Array;

beforeAll(async () => {
  fixture = await makeHubRoot({
    'org/expert1': 'llama-bf16/expert1',
    'org/gated': 'llama-bf16/expert2',
    'carol/private': 'llama-bf16/base',
  });
  await writeFile(fixture.file('org/gated', '.gated'), TOKEN);
  await writeFile(fixture.file('carol/private', '.private'), '');
  server = await startHubServer({
    root: fixture.root,
    users: [USER, OTHER],
    cdn: { ttlMs: 60_000 },
    rateLimit: { resolves: 1000, windowMs: 60_000 },
    now: () => Date.now() + skewMs,
  });
  local = new Uint8Array(await readFile(fixture.file('org/expert1', 'model.safetensors')));
});

afterAll(async () => {
  await server.close();
  await fixture.cleanup();
});

beforeEach(() => {
  server.setFaults([]);
  server.stats.reset();
  skewMs = 0;
});

/** Requests for file bytes (the Hub's `/resolve/` and the CDN), as `origin status`. */
function fileRequests(extra: (r: HubServer['stats']['log'][number]) => string = () => ''): string[] {
  return server.stats.log
    .filter((r) => r.path.includes('/resolve/') || r.origin === 'cdn')
    .map((r) => `${r.origin} ${r.status}${extra(r)}`);
}

/** Retries that wait on the server's clock instead of ours: a wait moves it forward. */
function serverClockRetry(): RetryPolicy & { delays: number[] } {
  const delays: number[] = [];
  return {
    delays,
    retries: 3,
    baseDelayMs: 100,
    sleep: async (ms) => {
      delays.push(ms);
      skewMs += ms;
    },
  };
}

function open(repo: string, extra: Partial<OpenHubTreeParams> = {}) {
  return openHubTree({ repo, hubUrl: server.url, retry: serverClockRetry(), onWarning: () => undefined, ...extra });
}

describe('redirects to the CDN', () => {
  it('follows the redirect once per file and reads every later range from the CDN, without the token', async () => {
    const tree = await open('org/gated', { accessToken: TOKEN });
    const model = await openModel(tree);
    for (const name of model.tensors.keys()) await model.readTensor(name);
    const resolves = server.stats.log.filter((r) => r.path.includes('/resolve/'));
    const cdn = server.stats.log.filter((r) => r.origin === 'cdn');
    // config.json is served by the Hub itself (not LFS); the weights file is resolved once.
    expect(resolves.map((r) => [r.path.split('/').pop(), r.status]).sort()).toEqual([
      ['config.json', 206],
      ['model.safetensors', 302],
    ]);
    expect(tree.resolveRequests).toBe(2);
    expect(cdn.length).toBe(model.tensors.size + 2); // the header (length, then JSON) and one range per tensor
    expect(cdn.every((r) => r.status === 206 && r.authorization === undefined)).toBe(true);
    expect(resolves.every((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
  });

  it('reads the same bytes as the file on disk, with concurrent first reads sharing one resolve', async () => {
    const tree = await open('org/expert1');
    const file = (await tree.open('model.safetensors'))!;
    const ranges = [[0, 8], [8, 100], [1000, 5000], [local.byteLength - 300, 300]] as const;
    const got = await Promise.all(ranges.map(([o, n]) => file.read(o, n)));
    ranges.forEach(([o, n], i) => expect(got[i]).toEqual(local.slice(o, o + n)));
    expect(server.stats.count('/resolve/')).toBe(1);
    expect(server.stats.log.filter((r) => r.origin === 'cdn').length).toBe(4);
  });

  it('asks the Hub again when the CDN URL has expired (403), and keeps reading', async () => {
    const tree = await open('org/expert1');
    const file = (await tree.open('model.safetensors'))!;
    expect(await file.read(0, 8)).toEqual(local.slice(0, 8));
    skewMs += 120_000; // past the 60 s the URL was signed for, on the server's clock
    expect(await file.read(100, 50)).toEqual(local.slice(100, 150));
    expect(await file.read(200, 50)).toEqual(local.slice(200, 250));
    expect(fileRequests()).toEqual(['hub 302', 'cdn 206', 'cdn 403', 'hub 302', 'cdn 206', 'cdn 206']);
    expect(tree.resolveRequests).toBe(2);
  });

  it('does not use a URL past the expiry it states: the Hub is asked first', async () => {
    const tree = await open('org/expert1');
    const file = (await tree.open('model.safetensors'))!;
    await file.read(0, 8);
    const cdnUrl = server.stats.log.find((r) => r.origin === 'cdn')!.url;
    expect(signedUrlExpiry(`http://x${cdnUrl}`)! - Date.now()).toBeGreaterThan(50_000);
    skewMs -= 58_000; // URLs signed now expire 2 s from our clock: inside the safety margin
    const fresh = await open('org/expert1');
    const f2 = (await fresh.open('model.safetensors'))!;
    server.stats.reset();
    await f2.read(0, 8);
    await f2.read(8, 8);
    expect(fileRequests()).toEqual(['hub 302', 'cdn 206', 'hub 302', 'cdn 206']);
  });

  it('fails with HubCdnRefusedError when even a fresh URL is refused', async () => {
    const tree = await open('org/expert1');
    server.setFaults([{ pathIncludes: '/objects/', origin: 'cdn', kind: 'status', status: 403, times: 'always' }]);
    const err = await (await tree.open('model.safetensors'))!.read(0, 8).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubCdnRefusedError);
    expect(String(err)).toMatch(/model\.safetensors bytes 0-7: the download URL the Hub redirected to was refused \(HTTP 403/);
    expect(String(err)).toContain('Signature=%E2%80%A6'); // the signature is not shown
    expect(server.stats.count('/resolve/')).toBe(2);
  });

  it('resumes a CDN body cut mid-range from the CDN, not the Hub', async () => {
    const tree = await open('org/expert1');
    const file = (await tree.open('model.safetensors'))!;
    await file.read(0, 8);
    server.setFaults([{ pathIncludes: '/objects/', origin: 'cdn', kind: 'drop-mid-body', afterBytes: 1000 }]);
    expect(await file.read(10_000, 50_000)).toEqual(local.slice(10_000, 60_000));
    expect(fileRequests((r) => ` ${r.range}`)).toEqual([
      'hub 302 bytes=0-7',
      'cdn 206 bytes=0-7',
      'cdn 206 bytes=10000-59999',
      'cdn 206 bytes=11000-59999',
    ]);
  });
});

describe('the rate limit', () => {
  it('waits for Retry-After on a 429 and says so, then reads on', async () => {
    const limited = await startHubServer({
      root: fixture.root,
      rateLimit: { resolves: 1, windowMs: 30_000 },
      now: () => Date.now() + skewMs,
    });
    try {
      const warnings: string[] = [];
      const retry = serverClockRetry();
      const tree = await openHubTree({ repo: 'org/expert1', hubUrl: limited.url, retry, onWarning: (m) => warnings.push(m) });
      await (await tree.open('config.json'))!.read(0, 4);
      const bytes = await (await tree.open('model.safetensors'))!.read(0, 8);
      expect(bytes).toEqual(local.slice(0, 8));
      const statuses = limited.stats.log.filter((r) => r.path.includes('/resolve/')).map((r) => r.status);
      expect(statuses).toEqual([206, 429, 206]);
      expect(retry.delays).toEqual([30_000]); // the window's end, not the 100 ms backoff
      expect(warnings).toEqual([expect.stringMatching(/model\.safetensors bytes 0-7: the Hub's rate limit was reached; waiting 30 s as it asks \(Retry-After\)/)]);
    } finally {
      await limited.close();
    }
  });
});

describe('gated, private and missing repos', () => {
  it('each get their own message', async () => {
    const gated = await open('org/gated').catch((e: unknown) => e);
    expect(gated).toBeInstanceOf(HubAccessError);
    expect((gated as HubAccessError).reason).toBe('gated');
    expect(String(gated)).toContain(`this repo is gated: accept its terms on the Hub and give a token of that account (no token was given; its page: ${server.url}/org/gated)`);

    const privateAnon = await open('carol/private').catch((e: unknown) => e);
    expect(privateAnon).toBeInstanceOf(HubNotFoundError);
    expect(String(privateAnon)).toContain('carol/private: no such model repo on the Hub (if it is private, give a token that can read it)');
    const privateOther = await open('carol/private', { accessToken: OTHER.token }).catch((e: unknown) => e);
    expect(String(privateOther)).toContain('carol/private: no such model repo that this token can read (it does not exist, or it is private');
    expect(String(privateOther)).not.toContain(OTHER.token);
    const owner = await open('carol/private', { accessToken: USER.token });
    expect((await (await owner.open('config.json'))!.read(0, 1)).byteLength).toBe(1);

    const missing = await open('org/nothing-here').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(HubNotFoundError);
    expect((missing as HubNotFoundError).missing).toBe('repo');
  });
});

describe('ETags', () => {
  const sha = 'b'.repeat(40);
  const body = new Uint8Array(64).map((_, i) => i);
  function fakeHub(etags: { etag: string; linked?: string }[]) {
    let n = 0;
    return (async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = String(input);
      if (url.includes('/revision/')) return Response.json({ sha });
      if (url.includes('/tree/')) return Response.json([{ type: 'file', path: 'model.safetensors', size: 64 }]);
      const range = /bytes=(\d+)-(\d+)/.exec(new Headers(init?.headers).get('range') ?? '')!;
      const [from, to] = [Number(range[1]), Number(range[2])];
      const e = etags[Math.min(n++, etags.length - 1)];
      const headers: Record<string, string> = { 'Content-Range': `bytes ${from}-${to}/64`, ETag: e.etag };
      if (e.linked) headers['X-Linked-Etag'] = e.linked;
      return new Response(body.slice(from, to + 1), { status: 206, headers });
    }) as typeof fetch;
  }

  it('takes the ETag from X-Linked-Etag when the Hub sends one', async () => {
    const tree = await openHubTree({ repo: 'x/y', hubUrl: 'https://hub.test', fetch: fakeHub([{ etag: '"pointer-oid"', linked: '"c0ffee"' }]) });
    await (await tree.open('model.safetensors'))!.read(0, 4);
    expect(tree.etagOf('model.safetensors')).toBe('c0ffee');
  });

  it('refuses a file whose ETag changes between reads', async () => {
    const f = fakeHub([{ etag: '"a"', linked: '"sha-1"' }, { etag: '"a"', linked: '"sha-2"' }]);
    const tree = await openHubTree({ repo: 'x/y', hubUrl: 'https://hub.test', fetch: f });
    const file = (await tree.open('model.safetensors'))!;
    await file.read(0, 4);
    const err = await file.read(4, 4).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubApiError);
    expect(String(err)).toContain('the file changed while it was read (ETag sha-1, now sha-2)');
  });
});

describe('signedUrlExpiry', () => {
  it('reads Expires= and S3 presigned dates', () => {
    expect(signedUrlExpiry('https://cdn.test/o?Expires=1700000000&Signature=x')).toBe(1_700_000_000_000);
    expect(signedUrlExpiry('https://s3.test/o?X-Amz-Date=20240102T030405Z&X-Amz-Expires=3600')).toBe(Date.UTC(2024, 0, 2, 3, 4, 5) + 3_600_000);
    expect(signedUrlExpiry('https://cdn.test/o')).toBeNull();
  });
});

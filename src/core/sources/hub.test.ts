import { mkdtemp, readFile, rename, rm, stat as fsStat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DiskRangeCache } from '../../cli/disk-cache.ts';
import { makeHubRoot, type HubRoot } from '../../cli/hub-server.fixtures.ts';
import { startHubServer, type HubServer } from '../../cli/hub-server.ts';
import { SafetensorsError } from '../safetensors/errors.ts';
import { openModel } from '../safetensors/model.ts';
import { MemoryRangeCache } from './cache.ts';
import {
  HubAccessError,
  HubApiError,
  HubFormatError,
  HubNotFoundError,
  HubRefError,
  HubTimeoutError,
  HubUnavailableError,
} from './hub-errors.ts';
import { nextLink, openHubTree, type HubProgress, type OpenHubTreeParams } from './hub.ts';
import type { RetryPolicy } from './retry.ts';

const TOKEN = 'hf_secretToken123';
let fixture: HubRoot;
let server: HubServer;

/** The golden file's tensors, from an independent reading of the format: u64 LE N, JSON, data. */
interface RefTensor {
  name: string;
  start: number;
  end: number;
}
let localFile: Uint8Array;
let refTensors: RefTensor[];
let headerBytes: number;

beforeAll(async () => {
  fixture = await makeHubRoot({
    'org/expert1': 'llama-bf16/expert1',
    'org/expert2': 'llama-bf16/expert2',
    'org/gated': 'llama-bf16/expert3',
    'org/bad': { 'config.json': '{"model_type":"llama"}', 'model.safetensors': badSafetensors() },
    'org/pickled': { 'config.json': '{}', 'pytorch_model.bin': new Uint8Array(64) },
    paged: 'llama-bf16/base',
  });
  await writeFile(fixture.file('org/gated', '.gated'), TOKEN);
  server = await startHubServer({ root: fixture.root, port: 0 });
  localFile = new Uint8Array(await readFile(fixture.file('org/expert1', 'model.safetensors')));
  const view = new DataView(localFile.buffer, localFile.byteOffset);
  const n = Number(view.getBigUint64(0, true));
  headerBytes = 8 + n;
  const header = JSON.parse(new TextDecoder().decode(localFile.subarray(8, 8 + n))) as Record<string, { data_offsets: [number, number] }>;
  refTensors = Object.entries(header)
    .filter(([k]) => k !== '__metadata__')
    .map(([name, t]) => ({ name, start: headerBytes + t.data_offsets[0], end: headerBytes + t.data_offsets[1] }))
    .sort((a, b) => a.start - b.start);
});

afterAll(async () => {
  await server.close();
  await fixture.cleanup();
});

beforeEach(() => {
  server.setFaults([]);
  server.stats.reset();
});

/** A header length that runs past the end of the file. */
function badSafetensors(): Uint8Array {
  const bytes = new Uint8Array(64);
  new DataView(bytes.buffer).setBigUint64(0, 1000n, true);
  return bytes;
}

/** Retries without waiting; the delays asked for are recorded. */
function fastRetry(extra: RetryPolicy = {}): RetryPolicy & { delays: number[] } {
  const delays: number[] = [];
  return {
    delays,
    retries: 3,
    baseDelayMs: 100,
    maxDelayMs: 1000,
    sleep: async (ms) => {
      delays.push(ms);
    },
    ...extra,
  };
}

function open(repo: string, extra: Partial<OpenHubTreeParams> = {}) {
  return openHubTree({ repo, hubUrl: server.url, retry: fastRetry(), ...extra });
}

describe('opening a repo', () => {
  it('pins the revision to the commit and lists files with sizes', async () => {
    const tree = await open('org/expert1');
    // Two API calls, no file bytes.
    expect(server.stats.count('/api/models/')).toBe(2);
    const info = (await (await fetch(`${server.url}/api/models/org/expert1`)).json()) as { sha: string };
    expect(tree.commit).toBe(info.sha);
    expect(tree.name).toBe(`org/expert1@${info.sha}`);
    expect((await tree.list()).sort()).toEqual(['config.json', 'model.safetensors']);
    expect(tree.sizes.get('model.safetensors')).toBe(localFile.byteLength);
    expect(await tree.open('missing.json')).toBeNull();
    expect(server.stats.bodyBytes('/resolve/')).toBe(0);
  });

  it('reads every file at the pinned commit', async () => {
    const tree = await open('org/expert1', { revision: 'main' });
    const src = (await tree.open('config.json'))!;
    await src.read(0, 10);
    expect(server.stats.log.at(-1)!.path).toBe(`/org/expert1/resolve/${tree.commit}/config.json`);
  });

  it('follows paginated listings', async () => {
    const paging = await startHubServer({ root: fixture.root, port: 0, pageSize: 1 });
    try {
      const tree = await openHubTree({ repo: 'paged', hubUrl: paging.url });
      expect((await tree.list()).sort()).toEqual(['config.json', 'model.safetensors']);
      expect(paging.stats.count('/tree/')).toBe(2);
    } finally {
      await paging.close();
    }
  });

  it('rejects bad repo ids before any request', async () => {
    await expect(open('org/na me')).rejects.toBeInstanceOf(HubRefError);
    await expect(open('org/name@dev')).rejects.toThrow(/pass the revision separately/);
    expect(server.stats.count()).toBe(0);
  });

  it('names the missing repo or revision', async () => {
    const repo = await open('org/nope').catch((e: unknown) => e);
    expect(repo).toBeInstanceOf(HubNotFoundError);
    expect((repo as HubNotFoundError).missing).toBe('repo');
    expect(String(repo)).toContain('org/nope');
    const rev = await open('org/expert1', { revision: 'v2' }).catch((e: unknown) => e);
    expect((rev as HubNotFoundError).missing).toBe('revision');
    expect(String(rev)).toMatch(/org\/expert1.*"v2"/);
  });

  it('refuses pickle-only repos, saying why', async () => {
    const err = await open('org/pickled').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubFormatError);
    expect(String(err)).toMatch(/org\/pickled.*pytorch_model\.bin.*pickles run code when loaded.*convert the model to safetensors/);
  });
});

describe('reading a model over HTTP ranges', () => {
  it('reads tensors equal to the local bytes, fetching only the header and the asked ranges', async () => {
    const tree = await open('org/expert1');
    const model = await openModel(tree);
    expect(model.id).toBe(tree.name);
    expect(model.config?.model_type).toBe('llama');
    expect([...model.tensors.keys()].sort()).toEqual(refTensors.map((t) => t.name).sort());
    const configSize = tree.sizes.get('config.json')!;
    // Opening reads the 8-byte length, the header JSON and config.json; nothing else.
    expect(server.stats.bodyBytes('/model.safetensors')).toBe(headerBytes);
    expect(server.stats.bodyBytes('/config.json')).toBe(configSize);

    const picked = [refTensors[0], refTensors[Math.floor(refTensors.length / 2)], refTensors.at(-1)!];
    for (const t of picked) {
      expect(await model.readTensor(t.name)).toEqual(localFile.slice(t.start, t.end));
    }
    const ranges = server.stats.log.filter((r) => r.path.endsWith('/model.safetensors')).map((r) => r.range);
    expect(ranges).toEqual([
      'bytes=0-7',
      `bytes=8-${headerBytes - 1}`,
      ...picked.map((t) => `bytes=${t.start}-${t.end - 1}`),
    ]);
    const tensorBytes = picked.reduce((a, t) => a + t.end - t.start, 0);
    expect(server.stats.bodyBytes('/model.safetensors')).toBe(headerBytes + tensorBytes);
    expect(headerBytes + tensorBytes).toBeLessThan(localFile.byteLength / 2);
  });

  it('reads a sub-range of a tensor as one range request', async () => {
    const tree = await open('org/expert1');
    const model = await openModel(tree);
    const t = refTensors.at(-1)!;
    server.stats.reset();
    expect(await model.readTensorRange(t.name, 64, 128)).toEqual(localFile.slice(t.start + 64, t.start + 192));
    expect(server.stats.log.map((r) => r.range)).toEqual([`bytes=${t.start + 64}-${t.start + 191}`]);
  });

  it('rejects reads outside the file without a request', async () => {
    const src = (await (await open('org/expert1')).open('model.safetensors'))!;
    server.stats.reset();
    await expect(src.read(localFile.byteLength - 4, 8)).rejects.toThrow(/org\/expert1@[0-9a-f]{40}\/model\.safetensors/);
    await expect(src.read(-1, 2)).rejects.toBeInstanceOf(RangeError);
    expect(await src.read(5, 0)).toEqual(new Uint8Array(0));
    expect(server.stats.count()).toBe(0);
  });

  it('names the repo and file when the served safetensors is malformed', async () => {
    const err = await openModel(await open('org/bad')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SafetensorsError);
    expect(String(err)).toMatch(/org\/bad@[0-9a-f]{40}\/model\.safetensors/);
  });

  it('names the file when it vanished from the server after listing', async () => {
    const tree = await open('org/expert2');
    const src = (await tree.open('config.json'))!;
    const path = fixture.file('org/expert2', 'config.json');
    await rename(path, `${path}.away`);
    try {
      const err = await src.read(0, 4).catch((e: unknown) => e);
      // The commit moved with the file list, so the server no longer knows the pinned commit.
      expect(err).toBeInstanceOf(HubNotFoundError);
      expect(String(err)).toContain('org/expert2');
    } finally {
      await rename(`${path}.away`, path);
    }
  });

  it('reports progress with bytes received never decreasing, up to what was read', async () => {
    const events: HubProgress[] = [];
    const tree = await open('org/expert1', { onProgress: (p) => events.push(p) });
    const src = (await tree.open('model.safetensors'))!;
    await src.read(0, 200_000);
    await src.read(200_000, 100_000);
    const mine = events.filter((e) => e.file === 'model.safetensors');
    expect(mine.length).toBeGreaterThan(1);
    for (let i = 1; i < mine.length; i++) expect(mine[i].bytesReceived).toBeGreaterThan(mine[i - 1].bytesReceived);
    expect(mine.at(-1)!.bytesReceived).toBe(300_000);
    expect(mine.every((e) => e.bytesExpected === localFile.byteLength && e.repo === 'org/expert1' && e.rate >= 0)).toBe(true);
  });
});

describe('transient failures', () => {
  it('resumes a body cut mid-tensor, asking only for the bytes not yet received', async () => {
    const t = refTensors.reduce((a, b) => (b.end - b.start > a.end - a.start ? b : a));
    const retry = fastRetry();
    const src = (await (await open('org/expert1', { retry })).open('model.safetensors'))!;
    server.setFaults([{ pathIncludes: 'model.safetensors', kind: 'drop-mid-body', afterBytes: 1000 }]);
    server.stats.reset();
    const bytes = await src.read(t.start, t.end - t.start);
    expect(bytes).toEqual(localFile.slice(t.start, t.end));
    expect(server.stats.log.map((r) => r.range)).toEqual([`bytes=${t.start}-${t.end - 1}`, `bytes=${t.start + 1000}-${t.end - 1}`]);
    expect(server.stats.bodyBytes()).toBe(t.end - t.start);
    expect(retry.delays).toEqual([100]);
  });

  it('retries a 503 once and succeeds', async () => {
    const retry = fastRetry();
    const tree = await open('org/expert1', { retry });
    server.setFaults([{ pathIncludes: 'config.json', kind: 'status', status: 503 }]);
    const bytes = await (await tree.open('config.json'))!.read(0, 20);
    expect(new TextDecoder().decode(bytes)).toBe((await readFile(fixture.file('org/expert1', 'config.json'), 'utf8')).slice(0, 20));
    expect(server.stats.log.filter((r) => r.path.endsWith('config.json')).map((r) => r.status)).toEqual([503, 206]);
    expect(retry.delays).toEqual([100]);
  });

  it('retries API calls too, honouring Retry-After up to the cap', async () => {
    const retry = fastRetry();
    server.setFaults([{ pathIncludes: '/revision/', kind: 'status', status: 429, headers: { 'Retry-After': '0.5' } }]);
    await open('org/expert1', { retry });
    expect(retry.delays).toEqual([500]);
  });

  it('gives up after the last retry with a message naming the file and range', async () => {
    const retry = fastRetry();
    const tree = await open('org/expert1', { retry });
    server.setFaults([{ pathIncludes: 'model.safetensors', kind: 'status', status: 503, times: 'always' }]);
    const err = await (await tree.open('model.safetensors'))!.read(100, 50).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubUnavailableError);
    expect((err as HubUnavailableError).attempts).toBe(4);
    expect(String(err)).toMatch(/org\/expert1@[0-9a-f]{40}\/model\.safetensors bytes 100-149: gave up after 4 attempts.*HTTP 503.*request id local-/);
    expect(retry.delays).toEqual([100, 200, 400]);
  });

  it('does not retry permanent errors', async () => {
    const retry = fastRetry();
    const tree = await open('org/expert1', { retry });
    server.setFaults([{ pathIncludes: 'config.json', kind: 'status', status: 400 }]);
    const err = await (await tree.open('config.json'))!.read(0, 4).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubApiError);
    expect((err as HubApiError).status).toBe(400);
    expect(String(err)).toContain('/org/expert1/resolve/');
    expect(retry.delays).toEqual([]);
  });

  it('times out a request that sends nothing, then retries', async () => {
    const retry = fastRetry({ timeoutMs: 600 });
    const tree = await open('org/expert1', { retry });
    server.setFaults([{ pathIncludes: 'config.json', kind: 'slow', delayMs: 4000 }]);
    const t0 = Date.now();
    await (await tree.open('config.json'))!.read(0, 4);
    expect(Date.now() - t0).toBeLessThan(3500);
    expect(retry.delays).toEqual([100]);

    server.setFaults([{ pathIncludes: 'config.json', kind: 'slow', delayMs: 4000, times: 'always' }]);
    const err = await (await tree.open('config.json'))!.read(0, 4).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubUnavailableError);
    expect((err as Error).cause).toBeInstanceOf(HubTimeoutError);
  });
});

describe('access tokens', () => {
  it('says the repo needs access when no token is given, before reading', async () => {
    const err = await open('org/gated').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubAccessError);
    expect(String(err)).toContain(`org/gated: this repo is gated: accept its terms on the Hub and give a token of that account (no token was given; its page: ${server.url}/org/gated)`);
  });

  it('maps a refused token (401) to HubAccessError without the token in the message', async () => {
    const tree = await open('org/gated', { accessToken: 'hf_wrongToken' });
    const err = await (await tree.open('config.json'))!.read(0, 4).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubAccessError);
    expect((err as HubAccessError).status).toBe(401);
    expect(String(err)).toContain('this repo is gated and the token given was refused');
    expect((err as HubAccessError).reason).toBe('gated');
    expect(String(err)).not.toContain('hf_wrongToken');
    expect((err as Error).stack ?? '').not.toContain('hf_wrongToken');
  });

  it('sends the token only in the Authorization header', async () => {
    const tree = await open('org/gated', { accessToken: TOKEN });
    const model = await openModel(tree);
    const t = refTensors[0];
    expect((await model.readTensor(t.name)).byteLength).toBe(t.end - t.start);
    expect(server.stats.count()).toBeGreaterThanOrEqual(5);
    for (const r of server.stats.log) {
      expect(r.authorization).toBe(`Bearer ${TOKEN}`);
      expect(r.url).not.toContain(TOKEN);
    }
  });
});

describe('range cache', () => {
  async function readAll(tree: Awaited<ReturnType<typeof open>>): Promise<Map<string, Uint8Array>> {
    const model = await openModel(tree);
    const out = new Map<string, Uint8Array>();
    for (const name of model.tensors.keys()) out.set(name, await model.readTensor(name));
    return out;
  }

  it('serves a second run from a memory cache without any file request', async () => {
    const cache = new MemoryRangeCache();
    const first = await readAll(await open('org/expert1', { cache }));
    const configSize = (await fsStat(fixture.file('org/expert1', 'config.json'))).size;
    expect(server.stats.bodyBytes('/resolve/')).toBe(localFile.byteLength + configSize);
    server.stats.reset();
    const events: HubProgress[] = [];
    const second = await readAll(await open('org/expert1', { cache, onProgress: (p) => events.push(p) }));
    expect(server.stats.count('/resolve/')).toBe(0);
    expect(server.stats.bodyBytes('/resolve/')).toBe(0);
    expect(second).toEqual(first);
    for (const t of refTensors) expect(second.get(t.name)).toEqual(localFile.slice(t.start, t.end));
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.fromCache)).toBe(true);
  });

  it('serves a second run from the disk cache, across cache instances', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'merge-studio-cache-'));
    try {
      await readAll(await open('org/expert1', { cache: new DiskRangeCache({ dir }) }));
      server.stats.reset();
      const second = await readAll(await open('org/expert1', { cache: new DiskRangeCache({ dir }) }));
      expect(server.stats.bodyBytes('/resolve/')).toBe(0);
      for (const t of refTensors) expect(second.get(t.name)).toEqual(localFile.slice(t.start, t.end));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps reading when the cache cannot store, with one warning', async () => {
    const warnings: string[] = [];
    const broken = new MemoryRangeCache();
    broken.put = async () => {
      throw new Error('disk full');
    };
    const tree = await open('org/expert1', { cache: broken, onWarning: (m) => warnings.push(m) });
    const src = (await tree.open('model.safetensors'))!;
    expect(await src.read(0, 8)).toEqual(localFile.slice(0, 8));
    expect(await src.read(8, 8)).toEqual(localFile.slice(8, 16));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/model\.safetensors: cannot store a range in the cache.*disk full/);
  });
  it('treats a cache that cannot be read as a miss, with a warning', async () => {
    const warnings: string[] = [];
    const broken = new MemoryRangeCache();
    broken.get = async () => {
      throw new Error('corrupt index');
    };
    const tree = await open('org/expert1', { cache: broken, onWarning: (m) => warnings.push(m) });
    expect(await (await tree.open('model.safetensors'))!.read(0, 8)).toEqual(localFile.slice(0, 8));
    expect(warnings).toEqual([expect.stringMatching(/model\.safetensors: cannot read the range cache.*corrupt index/)]);
  });
});

describe('cancelling', () => {
  it('aborts a waiting request at once, with the caller reason', async () => {
    const tree = await open('org/expert1');
    server.setFaults([{ pathIncludes: 'model.safetensors', kind: 'slow', delayMs: 3000 }]);
    const controller = new AbortController();
    const t0 = Date.now();
    const read = (await tree.open('model.safetensors'))!.read(0, 1000, controller.signal);
    setTimeout(() => controller.abort(new Error('user cancelled')), 100);
    await expect(read).rejects.toThrow('user cancelled');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('aborts every read of a tree through its own signal, and refuses new ones', async () => {
    const controller = new AbortController();
    const tree = await open('org/expert1', { signal: controller.signal });
    server.setFaults([{ pathIncludes: 'model.safetensors', kind: 'slow', delayMs: 3000, times: 'always' }]);
    const src = (await tree.open('model.safetensors'))!;
    const reads = [src.read(0, 10), src.read(100, 10)];
    setTimeout(() => controller.abort(), 100);
    for (const r of reads) await expect(r).rejects.toMatchObject({ name: 'AbortError' });
    await expect(src.read(0, 10)).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('aborts during the backoff wait without further requests', async () => {
    const controller = new AbortController();
    const tree = await open('org/expert1', { retry: { retries: 5, baseDelayMs: 5000 } });
    server.setFaults([{ pathIncludes: 'config.json', kind: 'status', status: 503, times: 'always' }]);
    const read = (await tree.open('config.json'))!.read(0, 4, controller.signal);
    setTimeout(() => controller.abort(new Error('stop')), 100);
    await expect(read).rejects.toThrow('stop');
    expect(server.stats.count('config.json')).toBe(1);
  });
});

describe('with an injected fetch', () => {
  function fakeFetch(routes: (url: string, init?: RequestInit) => Response): typeof fetch & { calls: string[] } {
    const calls: string[] = [];
    const f = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const url = String(input);
      calls.push(url);
      return routes(url, init);
    }) as typeof fetch & { calls: string[] };
    f.calls = calls;
    return f;
  }
  const sha = 'a'.repeat(40);
  const body = new Uint8Array(256).map((_, i) => i);
  const apiRoutes = (url: string): Response | null => {
    if (url.includes('/revision/')) return Response.json({ sha });
    if (url.includes('/tree/')) return Response.json([{ type: 'file', path: 'model.safetensors', size: 256 }]);
    return null;
  };

  it('copes with a server that ignores Range and sends the whole file', async () => {
    const f = fakeFetch((url) => apiRoutes(url) ?? new Response(body, { status: 200 }));
    const tree = await openHubTree({ repo: 'x/y', hubUrl: 'https://hub.test', fetch: f });
    expect(await (await tree.open('model.safetensors'))!.read(10, 20)).toEqual(body.slice(10, 30));
  });

  it('refuses a 206 for other bytes than asked', async () => {
    const f = fakeFetch(
      (url) => apiRoutes(url) ?? new Response(body.slice(0, 20), { status: 206, headers: { 'Content-Range': 'bytes 0-19/256' } }),
    );
    const tree = await openHubTree({ repo: 'x/y', hubUrl: 'https://hub.test', fetch: f });
    await expect((await tree.open('model.safetensors'))!.read(10, 20)).rejects.toThrow(/sent bytes 0-19 for a request of 10-29/);
  });

  it('never follows a listing page link to another host', async () => {
    const f = fakeFetch((url) => {
      if (url.includes('/revision/')) return Response.json({ sha });
      return Response.json([], { headers: { Link: '<https://evil.test/api/page2>; rel="next"' } });
    });
    await expect(openHubTree({ repo: 'x/y', hubUrl: 'https://hub.test', fetch: f, accessToken: TOKEN })).rejects.toThrow(/another host/);
    expect(f.calls.some((u) => u.includes('evil.test'))).toBe(false);
  });

  it('builds URLs from hubUrl, with the revision encoded and paths escaped', async () => {
    const f = fakeFetch((url) => {
      if (url.includes('/revision/')) return Response.json({ sha });
      if (url.includes('/tree/')) return Response.json([{ type: 'file', path: 'sub dir/a#b.json', size: 2 }]);
      return new Response('{}', { status: 206, headers: { 'Content-Range': 'bytes 0-1/2' } });
    });
    const tree = await openHubTree({ repo: 'x/y', revision: 'refs/pr/1', hubUrl: 'https://mirror.test/hf/', fetch: f, requireSafetensors: false });
    await (await tree.open('sub dir/a#b.json'))!.read(0, 2);
    expect(f.calls).toEqual([
      'https://mirror.test/hf/api/models/x/y/revision/refs%2Fpr%2F1',
      `https://mirror.test/hf/api/models/x/y/tree/${sha}?recursive=true&expand=false`,
      `https://mirror.test/hf/x/y/resolve/${sha}/sub%20dir/a%23b.json`,
    ]);
  });

  it('fails clearly when the revision answer has no commit', async () => {
    const f = fakeFetch(() => Response.json({ id: 'x/y' }));
    await expect(openHubTree({ repo: 'x/y', fetch: f })).rejects.toThrow(/x\/y@main: resolving the revision: the answer has no commit "sha"/);
  });

  it('maps network failures to retries, then to HubUnavailableError', async () => {
    let n = 0;
    const f = fakeFetch(() => {
      n++;
      throw new TypeError('fetch failed');
    });
    const retry = fastRetry({ retries: 2 });
    const err = await openHubTree({ repo: 'x/y', fetch: f, retry }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HubUnavailableError);
    expect(String(err)).toMatch(/x\/y@main: resolving the revision: gave up after 3 attempts.*network error.*fetch failed/);
    expect(n).toBe(3);
  });
});

describe('nextLink', () => {
  it('finds rel="next" among several links and resolves it', () => {
    expect(nextLink('<https://h/a?c=2>; rel="next", <https://h/a?c=0>; rel="prev"', 'https://h/a')).toBe('https://h/a?c=2');
    expect(nextLink('</api/x?cursor=5>; rel=next', 'https://h/api/x')).toBe('https://h/api/x?cursor=5');
    expect(nextLink('<https://h/a>; rel="prev"', 'https://h/')).toBeUndefined();
    expect(nextLink(null, 'https://h/')).toBeUndefined();
  });
});


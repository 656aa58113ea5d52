import { spawn } from 'node:child_process';
import { readFile, stat, utimes } from 'node:fs/promises';
import { downloadFile, fileDownloadInfo, listFiles, modelInfo } from '@huggingface/hub';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { makeHubRoot, type HubRoot } from './hub-server.fixtures.ts';
import { parseHubServerArgs, parseRange, startHubServer, type HubServer } from './hub-server.ts';

let fixture: HubRoot;
let server: HubServer;
let local: Uint8Array;

beforeAll(async () => {
  fixture = await makeHubRoot({
    'org/expert1': 'llama-bf16/expert1',
    solo: 'llama-bf16/base',
    'org/nested': { 'config.json': '{}', 'sub/dir/model.safetensors': new Uint8Array(16), '.hidden': 'secret' },
    'org/gated': { 'config.json': '{"model_type":"llama"}', '.gated': 'tok-123\n' },
  });
  server = await startHubServer({ root: fixture.root, port: 0, pageSize: 2 });
  local = new Uint8Array(await readFile(fixture.file('org/expert1', 'model.safetensors')));
});

afterAll(async () => {
  await server.close();
  await fixture.cleanup();
});

beforeEach(() => {
  server.setFaults([]);
  server.stats.reset();
});

async function getJson(path: string, init?: RequestInit): Promise<{ res: Response; body: unknown }> {
  const res = await fetch(`${server.url}${path}`, init);
  return { res, body: await res.json() };
}

describe('repos and model info', () => {
  it('finds org/name and single-name repos', async () => {
    expect(await server.repos()).toEqual(['org/expert1', 'org/gated', 'org/nested', 'solo']);
  });

  it('serves model info with a 40-hex sha that main, HEAD and the sha itself resolve to', async () => {
    const { res, body } = await getJson('/api/models/org/expert1');
    expect(res.status).toBe(200);
    const info = body as { id: string; sha: string; siblings: { rfilename: string }[] };
    expect(info.id).toBe('org/expert1');
    expect(info.sha).toMatch(/^[0-9a-f]{40}$/);
    expect(info.siblings.map((s) => s.rfilename).sort()).toEqual(['config.json', 'model.safetensors']);
    for (const rev of ['main', 'HEAD', info.sha]) {
      const r = await getJson(`/api/models/org/expert1/revision/${rev}`);
      expect((r.body as { sha: string }).sha).toBe(info.sha);
    }
    const single = await getJson('/api/models/solo/revision/main');
    expect((single.body as { id: string }).id).toBe('solo');
  });

  it('changes the sha when a file changes, and keeps it otherwise', async () => {
    const before = ((await getJson('/api/models/solo')).body as { sha: string }).sha;
    expect(((await getJson('/api/models/solo')).body as { sha: string }).sha).toBe(before);
    const cfg = fixture.file('solo', 'config.json');
    const s = await stat(cfg);
    await utimes(cfg, s.atime, new Date(s.mtimeMs + 5000));
    const after = ((await getJson('/api/models/solo')).body as { sha: string }).sha;
    expect(after).not.toBe(before);
    // The old commit is no longer served.
    const old = await fetch(`${server.url}/solo/resolve/${before}/config.json`);
    expect(old.status).toBe(404);
    expect(old.headers.get('x-error-code')).toBe('RevisionNotFound');
  });

  it('answers 404 with the Hub error codes for missing repos, revisions and files', async () => {
    const repo = await fetch(`${server.url}/api/models/org/nope`);
    expect([repo.status, repo.headers.get('x-error-code')]).toEqual([404, 'RepoNotFound']);
    const rev = await fetch(`${server.url}/api/models/org/expert1/revision/v9`);
    expect([rev.status, rev.headers.get('x-error-code')]).toEqual([404, 'RevisionNotFound']);
    const file = await fetch(`${server.url}/org/expert1/resolve/main/nope.safetensors`);
    expect([file.status, file.headers.get('x-error-code')]).toEqual([404, 'EntryNotFound']);
    expect(((await file.json()) as { error: string }).error).toContain('nope.safetensors');
  });

  it('never serves dotfiles or paths outside the repo', async () => {
    for (const path of ['/org/nested/resolve/main/.hidden', '/org/gated/resolve/main/.gated', '/org/nested/resolve/main/../expert1/config.json', '/org/nested/resolve/main/%2E%2E/expert1/config.json']) {
      const res = await fetch(`${server.url}${path}`, { headers: { Authorization: 'Bearer tok-123' } });
      expect(res.status, path).toBe(404);
    }
  });
});

describe('file tree', () => {
  async function allPages(path: string): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    let url: string | undefined = `${server.url}${path}`;
    while (url) {
      const res: Response = await fetch(url);
      expect(res.status).toBe(200);
      out.push(...((await res.json()) as Record<string, unknown>[]));
      const link = res.headers.get('link');
      url = link ? /<([^>]+)>;\s*rel="next"/.exec(link)?.[1] : undefined;
    }
    return out;
  }

  it('lists files with sizes and lfs entries, paginated with Link headers', async () => {
    const first = await fetch(`${server.url}/api/models/org/nested/tree/main?recursive=true`);
    expect(first.headers.get('link')).toMatch(/rel="next"/); // 4 entries, pages of 2
    const entries = await allPages('/api/models/org/nested/tree/main?recursive=true');
    expect(entries.map((e) => [e.type, e.path])).toEqual([
      ['file', 'config.json'],
      ['directory', 'sub'],
      ['directory', 'sub/dir'],
      ['file', 'sub/dir/model.safetensors'],
    ]);
    const st = entries.find((e) => e.path === 'sub/dir/model.safetensors')!;
    expect(st.size).toBe(16);
    expect(st.lfs).toMatchObject({ size: 16 });
    expect((st.lfs as { oid: string }).oid).toMatch(/^[0-9a-f]{64}$/);
    expect(entries.find((e) => e.path === 'config.json')!.lfs).toBeUndefined();
  });

  it('lists one level without recursive, and a sub-folder by path', async () => {
    expect((await allPages('/api/models/org/nested/tree/main')).map((e) => e.path)).toEqual(['config.json', 'sub']);
    expect((await allPages('/api/models/org/nested/tree/main/sub/dir')).map((e) => e.path)).toEqual(['sub/dir/model.safetensors']);
    const missing = await fetch(`${server.url}/api/models/org/nested/tree/main/nowhere`);
    expect(missing.status).toBe(404);
  });
});

describe('resolve with Range', () => {
  const url = () => `${server.url}/org/expert1/resolve/main/model.safetensors`;

  it('answers 206 with Content-Range and exactly the bytes asked for', async () => {
    const res = await fetch(url(), { headers: { Range: 'bytes=100-199' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 100-199/${local.byteLength}`);
    expect(res.headers.get('content-length')).toBe('100');
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('x-repo-commit')).toMatch(/^[0-9a-f]{40}$/);
    expect(res.headers.get('etag')).toMatch(/^"[0-9a-f]+"$/);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(local.slice(100, 200));
  });

  it('serves open-ended and suffix ranges, and the whole file without Range', async () => {
    const tail = await fetch(url(), { headers: { Range: `bytes=${local.byteLength - 10}-` } });
    expect(new Uint8Array(await tail.arrayBuffer())).toEqual(local.slice(-10));
    const suffix = await fetch(url(), { headers: { Range: 'bytes=-7' } });
    expect(suffix.headers.get('content-range')).toBe(`bytes ${local.byteLength - 7}-${local.byteLength - 1}/${local.byteLength}`);
    expect(new Uint8Array(await suffix.arrayBuffer())).toEqual(local.slice(-7));
    const whole = await fetch(url());
    expect(whole.status).toBe(200);
    expect(new Uint8Array(await whole.arrayBuffer())).toEqual(local);
  });

  it('answers 416 for ranges it cannot satisfy', async () => {
    for (const range of [`bytes=${local.byteLength}-`, 'bytes=20-10', 'bytes=0-1,5-9', 'items=0-1', 'bytes=-0']) {
      const res = await fetch(url(), { headers: { Range: range } });
      expect(res.status, range).toBe(416);
      expect(res.headers.get('content-range'), range).toBe(`bytes */${local.byteLength}`);
      await res.arrayBuffer();
    }
  });

  it('answers HEAD with the size and no body, and If-None-Match with 304', async () => {
    const head = await fetch(url(), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(local.byteLength));
    const etag = head.headers.get('etag')!;
    const again = await fetch(url(), { headers: { 'If-None-Match': etag } });
    expect(again.status).toBe(304);
    expect(server.stats.bodyBytes('/resolve/')).toBe(0);
  });

  it('parseRange follows RFC 9110 for single ranges', () => {
    expect(parseRange('bytes=0-0', 10)).toEqual([0, 0]);
    expect(parseRange('bytes=5-100', 10)).toEqual([5, 9]); // clamped
    expect(parseRange('bytes=-3', 10)).toEqual([7, 9]);
    expect(parseRange('bytes=-30', 10)).toEqual([0, 9]);
    expect(parseRange('bytes=10-', 10)).toBeNull();
    expect(parseRange('bytes=0-0', 0)).toBeNull();
    expect(parseRange('bytes=-', 10)).toBeNull();
  });
});

describe('CORS', () => {
  it('answers the preflight of a Range + Authorization request', async () => {
    const res = await fetch(`${server.url}/org/expert1/resolve/main/model.safetensors`, {
      method: 'OPTIONS',
      headers: { Origin: 'http://localhost:5173', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'range,authorization' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    const allowed = res.headers.get('access-control-allow-headers')!.toLowerCase();
    expect(allowed).toContain('range');
    expect(allowed).toContain('authorization');
    expect(res.headers.get('access-control-allow-methods')).toContain('GET');
  });

  it('exposes the headers a page needs to read', async () => {
    const res = await fetch(`${server.url}/org/expert1/resolve/main/config.json`, { headers: { Range: 'bytes=0-3' } });
    const exposed = res.headers.get('access-control-expose-headers')!.toLowerCase();
    for (const h of ['content-range', 'content-length', 'etag', 'x-repo-commit', 'accept-ranges']) expect(exposed).toContain(h);
    await res.arrayBuffer();
  });
});

describe('gated repos', () => {
  it('refuses files without the token, serves them with it; info and listing stay public', async () => {
    const path = '/org/gated/resolve/main/config.json';
    const none = await fetch(`${server.url}${path}`);
    expect([none.status, none.headers.get('x-error-code')]).toEqual([401, 'GatedRepo']);
    const wrong = await fetch(`${server.url}${path}`, { headers: { Authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${server.url}${path}`, { headers: { Authorization: 'Bearer tok-123' } });
    expect(right.status).toBe(200);
    expect(await right.text()).toBe('{"model_type":"llama"}');
    const info = await getJson('/api/models/org/gated');
    expect((info.body as { gated: unknown }).gated).toBe('manual');
  });
});

describe('faults and stats', () => {
  it('answers an injected status the given number of times', async () => {
    server.setFaults([{ pathIncludes: 'config.json', kind: 'status', status: 503, times: 2, headers: { 'Retry-After': '1' } }]);
    const u = `${server.url}/org/expert1/resolve/main/config.json`;
    const a = await fetch(u);
    expect([a.status, a.headers.get('retry-after')]).toEqual([503, '1']);
    expect((await fetch(u)).status).toBe(503);
    expect((await fetch(u)).status).toBe(200);
  });

  it('cuts a body after the given bytes', async () => {
    server.setFaults([{ pathIncludes: 'model.safetensors', kind: 'drop-mid-body', afterBytes: 1000 }]);
    const res = await fetch(`${server.url}/org/expert1/resolve/main/model.safetensors`, { headers: { Range: 'bytes=0-99999' } });
    expect(res.status).toBe(206);
    const reader = res.body!.getReader();
    let got = 0;
    await expect(
      (async () => {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          got += value.byteLength;
        }
      })(),
    ).rejects.toThrow();
    expect(got).toBe(1000);
    expect(server.stats.log.at(-1)).toMatchObject({ bodyBytes: 1000, fault: 'drop-mid-body' });
  });

  it('delays an answer', async () => {
    server.setFaults([{ pathIncludes: 'config.json', kind: 'slow', delayMs: 300 }]);
    const t0 = Date.now();
    await (await fetch(`${server.url}/solo/resolve/main/config.json`)).text();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
  });

  it('takes faults over HTTP and reports stats over HTTP', async () => {
    const set = await fetch(`${server.url}/__faults`, {
      method: 'POST',
      body: JSON.stringify([{ pathIncludes: 'solo', kind: 'status', status: 500 }]),
    });
    expect(set.status).toBe(200);
    expect((await fetch(`${server.url}/solo/resolve/main/config.json`)).status).toBe(500);
    const bad = await fetch(`${server.url}/__faults`, { method: 'POST', body: '[{"kind":"explode"}]' });
    expect(bad.status).toBe(400);
    await (await fetch(`${server.url}/org/expert1/resolve/main/model.safetensors`, { headers: { Range: 'bytes=0-9' } })).arrayBuffer();
    const stats = (await getJson('/__stats')).body as { byPath: Record<string, { requests: number; bodyBytes: number }> };
    expect(stats.byPath['/org/expert1/resolve/main/model.safetensors']).toEqual({ requests: 1, bodyBytes: 10 });
  });

  it('counts requests and body bytes per path, and records the Authorization header', async () => {
    await (await fetch(`${server.url}/org/expert1/resolve/main/model.safetensors`, { headers: { Range: 'bytes=0-7', Authorization: 'Bearer abc' } })).arrayBuffer();
    await (await fetch(`${server.url}/org/expert1/resolve/main/model.safetensors`, { headers: { Range: 'bytes=8-107' } })).arrayBuffer();
    expect(server.stats.count('model.safetensors')).toBe(2);
    expect(server.stats.bodyBytes('model.safetensors')).toBe(108);
    expect(server.stats.log[0]).toMatchObject({ authorization: 'Bearer abc', range: 'bytes=0-7', status: 206 });
  });
});

describe('@huggingface/hub against the local server', () => {
  it('lists, describes and downloads files as from the Hub', async () => {
    const hubUrl = server.url;
    const files: string[] = [];
    for await (const f of listFiles({ repo: 'org/expert1', hubUrl, recursive: true })) files.push(f.path);
    expect(files.sort()).toEqual(['config.json', 'model.safetensors']);
    const info = await modelInfo({ name: 'org/expert1', hubUrl });
    expect(info.name).toBe('org/expert1');
    const dl = await fileDownloadInfo({ repo: 'org/expert1', path: 'model.safetensors', hubUrl });
    expect(dl?.size).toBe(local.byteLength);
    expect(await fileDownloadInfo({ repo: 'org/expert1', path: 'nope.bin', hubUrl })).toBeNull();
    const blob = await downloadFile({ repo: 'org/expert1', path: 'model.safetensors', hubUrl, xet: false });
    expect(new Uint8Array(await blob!.slice(50, 150).arrayBuffer())).toEqual(local.slice(50, 150));
  });
});

describe('CDN redirects and the rate limit', () => {
  it('redirects LFS files to a signed CDN URL with the Hub headers, serves small files itself, and limits /resolve/', async () => {
    let clock = Date.now();
    const cdnServer = await startHubServer({ root: fixture.root, cdn: { ttlMs: 10_000 }, rateLimit: { resolves: 3, windowMs: 60_000 }, now: () => clock });
    try {
      const res = await fetch(`${cdnServer.url}/org/expert1/resolve/main/model.safetensors`, { redirect: 'manual' });
      expect(res.status).toBe(302);
      const location = res.headers.get('location')!;
      expect(location.startsWith(`${cdnServer.cdnUrl}/objects/`)).toBe(true);
      expect(res.headers.get('x-linked-size')).toBe(String(local.byteLength));
      expect(res.headers.get('x-linked-etag')).toMatch(/^"[0-9a-f]{64}"$/);
      expect(res.headers.get('etag')).not.toBe(res.headers.get('x-linked-etag')); // the pointer's id
      const part = await fetch(location, { headers: { Range: 'bytes=10-19', Origin: 'http://page.test' } });
      expect([part.status, part.headers.get('access-control-allow-origin')]).toEqual([206, '*']);
      expect(new Uint8Array(await part.arrayBuffer())).toEqual(local.slice(10, 20));
      expect((await fetch(`${cdnServer.url}/org/expert1/resolve/main/config.json`, { redirect: 'manual' })).status).toBe(200);
      // Expired, and tampered with: 403, as S3 answers.
      clock += 11_000;
      const expired = await fetch(location);
      expect([expired.status, ((await expired.json()) as { error: string }).error]).toEqual([403, 'AccessDenied: Request has expired']);
      const tampered = await fetch(location.replace(/Signature=\w/, 'Signature=0'));
      expect(tampered.status).toBe(403);
      await tampered.arrayBuffer();
      // Third /resolve/ in the window passes, the fourth is refused with Retry-After (window end, in seconds).
      expect((await fetch(`${cdnServer.url}/org/expert1/resolve/main/config.json`)).status).toBe(200);
      const limited = await fetch(`${cdnServer.url}/org/expert1/resolve/main/config.json`);
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBe(49);
      expect(limited.headers.get('ratelimit-policy')).toBe('"fixed window";"resolvers";q=3;w=60');
      expect((await fetch(`${cdnServer.url}/api/models/org/expert1`)).status).toBe(200); // the API is not limited
      clock += 50_000;
      expect((await fetch(`${cdnServer.url}/org/expert1/resolve/main/config.json`)).status).toBe(200);
    } finally {
      await cdnServer.close();
    }
  });
});

describe('command line', () => {
  it('parses options and refuses bad ones with the usage', () => {
    expect(parseHubServerArgs(['--root', 'x', '--port', '0', '--verbose'])).toEqual({ root: 'x', port: 0, host: '127.0.0.1', verbose: true });
    expect(parseHubServerArgs(['--root', 'x', '--cdn', '--cdn-ttl', '30', '--rate-limit', '3000/300', '--users', 'u.json'])).toMatchObject({
      cdnTtlS: 30,
      rateLimit: { resolves: 3000, windowS: 300 },
      usersFile: 'u.json',
    });
    expect(() => parseHubServerArgs(['--root', 'x', '--cdn-ttl', '30'])).toThrow(/--cdn-ttl needs --cdn/);
    expect(() => parseHubServerArgs(['--root', 'x', '--rate-limit', 'lots'])).toThrow(/--rate-limit lots: give N\/SECONDS/);
    expect(() => parseHubServerArgs([])).toThrow(/--root is required/);
    expect(() => parseHubServerArgs(['--root', 'x', '--port', 'http'])).toThrow(/--port http/);
    expect(() => parseHubServerArgs(['--root', 'x', '--bogus'])).toThrow(/unknown option --bogus[\s\S]*usage/);
  });

  it('runs as `npm run hub`: prints its URL and serves, logging requests with --verbose', async () => {
    const child = spawn(process.execPath, ['bin/run-ts.mjs', 'src/cli/hub-server.ts', '--root', fixture.root, '--port', '0', '--verbose'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let out = '';
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const url = await new Promise<string>((done, fail) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /on (http:\/\/[\d.]+:\d+)/.exec(out);
          if (m) done(m[1]);
        });
        child.once('exit', (code) => fail(new Error(`exited ${code}: ${err}`)));
      });
      expect(out).toContain('org/expert1');
      const res = await fetch(`${url}/org/gated/resolve/main/config.json`, { headers: { Authorization: 'Bearer tok-123' } });
      expect(res.status).toBe(200);
      await res.text();
      await new Promise((r) => setTimeout(r, 100));
      expect(err).toMatch(/GET \/org\/gated\/resolve\/main\/config.json auth -> 200/);
      expect(err).not.toContain('tok-123');
    } finally {
      child.kill('SIGTERM');
    }
  }, 30_000);
});

/**
 * The official client (@huggingface/hub) against the local Hub server, call by call, as a user of the
 * library would make them: listing and search, paths-info, file info and download, safetensors
 * metadata, snapshot download, whoami, create repo, upload (preupload, LFS batch with the basic
 * transfer, NDJSON commit) and OAuth sign-in with PKCE. Files pushed come back byte for byte.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  createRepo,
  downloadFile,
  fileDownloadInfo,
  listModels,
  modelInfo,
  oauthHandleRedirect,
  oauthLoginUrl,
  parseSafetensorsMetadata,
  pathsInfo,
  snapshotDownload,
  uploadFiles,
  whoAmI,
} from '@huggingface/hub';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHubRoot, type HubRoot } from './hub-server.fixtures.ts';
import { startHubServer, type HubServer } from './hub-server.ts';

const ALICE = { name: 'alice', token: 'hf_alice_token_0001', orgs: ['acme'] };
const BOB = { name: 'bob', token: 'hf_bob_token_00002', role: 'read' as const };

let fixture: HubRoot;
let server: HubServer;
let hubUrl: string;
let work: string;

beforeAll(async () => {
  fixture = await makeHubRoot({
    'org/expert1': 'llama-bf16/expert1',
    'org/expert2': 'llama-bf16/expert2',
    'other/base': 'llama-bf16/base',
    'org/notes': { 'README.md': '---\nlicense: mit\ntags: [demo]\n---\n# Notes\n', 'notes.txt': 'hello' },
    'acme/secret': { 'config.json': '{"model_type":"llama"}', '.private': '' },
  });
  await writeFile(fixture.file('org/expert1', '.hub.json'), JSON.stringify({ downloads: 50, likes: 3 }));
  await writeFile(fixture.file('org/expert2', '.hub.json'), JSON.stringify({ downloads: 700 }));
  server = await startHubServer({ root: fixture.root, users: [ALICE, BOB], pageSize: 2 });
  hubUrl = server.url;
  work = await mkdtemp(join(tmpdir(), 'merge-studio-client-'));
});

afterAll(async () => {
  await server.close();
  await fixture.cleanup();
  await rm(work, { recursive: true, force: true });
});

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('reading with the official client', () => {
  it('listModels: search, author, tag filter and sort by downloads, across pages', async () => {
    const byDownloads = await all(listModels({ hubUrl, search: { query: 'expert' }, sort: 'downloads' }));
    expect(byDownloads.map((m) => [m.name, m.downloads])).toEqual([
      ['org/expert2', 700],
      ['org/expert1', 50],
    ]);
    const byAuthor = await all(listModels({ hubUrl, search: { owner: 'org' } }));
    expect(byAuthor.map((m) => m.name).sort()).toEqual(['org/expert1', 'org/expert2', 'org/notes']);
    const withWeights = await all(listModels({ hubUrl, search: { tags: ['safetensors'] }, additionalFields: ['safetensors', 'config'] }));
    expect(withWeights.map((m) => m.name).sort()).toEqual(['org/expert1', 'org/expert2', 'other/base']);
    const e1 = withWeights.find((m) => m.name === 'org/expert1')!;
    expect(e1.safetensors?.total).toBeGreaterThan(0);
    expect(Object.keys(e1.safetensors?.parameters ?? {})).toEqual(['BF16']);
    expect((e1.config as { model_type?: string } | undefined)?.model_type).toBe('llama');
    // A private repo is listed only for those who may read it.
    expect((await all(listModels({ hubUrl, search: { query: 'secret' } }))).length).toBe(0);
    expect((await all(listModels({ hubUrl, search: { query: 'secret' }, accessToken: ALICE.token }))).map((m) => m.name)).toEqual(['acme/secret']);
    expect((await all(listModels({ hubUrl, search: { query: 'secret' }, accessToken: BOB.token }))).length).toBe(0);
  });

  it('modelInfo: card data and tags from the README front matter', async () => {
    const info = await modelInfo({ name: 'org/notes', hubUrl, additionalFields: ['cardData', 'tags'] });
    expect(info.cardData?.license).toBe('mit');
    expect(info.tags).toEqual(expect.arrayContaining(['demo', 'license:mit']));
  });

  it('pathsInfo: files with lfs info, folders, and missing paths left out', async () => {
    const info = await pathsInfo({ repo: 'org/expert1', hubUrl, paths: ['model.safetensors', 'config.json', 'nope'], expand: true });
    expect(info.map((p) => p.path)).toEqual(['model.safetensors', 'config.json']);
    const st = info[0];
    const local = await readFile(fixture.file('org/expert1', 'model.safetensors'));
    expect(st.size).toBe(local.byteLength);
    expect(st.lfs?.oid).toMatch(/^[0-9a-f]{64}$/);
    expect(st.lastCommit?.id).toMatch(/^[0-9a-f]{40}$/);
    expect(info[1].lfs).toBeUndefined();
  });

  it('fileDownloadInfo and downloadFile: size, etag, a range of the bytes', async () => {
    const local = new Uint8Array(await readFile(fixture.file('org/expert1', 'model.safetensors')));
    const dl = await fileDownloadInfo({ repo: 'org/expert1', path: 'model.safetensors', hubUrl });
    expect(dl?.size).toBe(local.byteLength);
    expect(dl?.etag).toMatch(/^"[0-9a-f]{64}"$/);
    const blob = await downloadFile({ repo: 'org/expert1', path: 'model.safetensors', hubUrl });
    expect(new Uint8Array(await blob!.slice(1000, 1100).arrayBuffer())).toEqual(local.slice(1000, 1100));
  });

  it('parseSafetensorsMetadata: the header through range reads', async () => {
    const meta = await parseSafetensorsMetadata({ repo: 'org/expert1', hubUrl, computeParametersCount: true });
    expect(meta.sharded).toBe(false);
    if (meta.sharded) return;
    expect(Object.keys(meta.header)).toContain('model.embed_tokens.weight');
    expect(meta.parameterCount?.BF16).toBeGreaterThan(0);
  });

  it('snapshotDownload: every file into a cache folder, byte for byte', async () => {
    const folder = await snapshotDownload({ repo: 'org/expert1', hubUrl, cacheDir: join(work, 'hf-cache') });
    for (const name of ['model.safetensors', 'config.json']) {
      expect((await readFile(join(folder, name))).equals(await readFile(fixture.file('org/expert1', name)))).toBe(true);
    }
  });
});

describe('writing with the official client', () => {
  it('whoAmI: the user of a token, with its orgs; an unknown token is refused', async () => {
    const me = await whoAmI({ hubUrl, accessToken: ALICE.token });
    expect(me.name).toBe('alice');
    expect(me.type === 'user' && me.orgs.map((o) => o.name)).toEqual(['acme']);
    await expect(whoAmI({ hubUrl, accessToken: 'hf_unknown_token_x' })).rejects.toThrow(/401|Invalid/);
  });

  it('createRepo + uploadFiles: a folder pushed lands byte-identical; regular files inline, weights through LFS', async () => {
    const src = join(work, 'push-src');
    await mkdir(join(src, 'sub'), { recursive: true });
    const weights = new Uint8Array(300_001).map((_, i) => (i * 7919) % 251);
    await writeFile(join(src, 'model.safetensors'), weights);
    await writeFile(join(src, 'config.json'), '{"model_type":"llama"}\n');
    await writeFile(join(src, 'sub', 'notes.md'), '# notes\n');
    const created = await createRepo({ repo: 'alice/pushed', hubUrl, accessToken: ALICE.token, private: true });
    expect(created.repoUrl).toBe(`${hubUrl}/alice/pushed`);
    server.stats.reset();
    const out = await uploadFiles({ repo: 'alice/pushed', hubUrl, accessToken: ALICE.token, files: [pathToFileURL(src)] });
    expect(out?.commit.oid).toMatch(/^[0-9a-f]{40}$/);
    const routes = server.stats.log.map((r) => `${r.method} ${r.path.replace(/\/lfs-upload\/\w+/, '/lfs-upload/OID')}`);
    expect(routes).toEqual(
      expect.arrayContaining([
        'POST /api/models/alice/pushed/preupload/main',
        'POST /alice/pushed.git/info/lfs/objects/batch',
        'PUT /lfs-upload/OID',
        'POST /api/models/alice/pushed/commit/main',
      ]),
    );
    // The upload URL carries no token, and the PUT is sent without one.
    const put = server.stats.log.find((r) => r.method === 'PUT')!;
    expect(put.authorization).toBeUndefined();
    expect(put.url).not.toContain(ALICE.token);
    // A folder URL uploads under the folder's name (the client's rule).
    for (const [name, path] of [['model.safetensors', 'model.safetensors'], ['config.json', 'config.json'], ['notes.md', 'sub/notes.md']]) {
      const served = await fetch(`${hubUrl}/alice/pushed/resolve/main/push-src/${path}`, { headers: { Authorization: `Bearer ${ALICE.token}` } });
      expect(served.status, name).toBe(200);
      const local = await readFile(join(src, ...path.split('/')));
      expect(Buffer.from(await served.arrayBuffer()).equals(local), name).toBe(true);
    }
    // The tree reports the pushed weights' real sha256.
    const [info] = await pathsInfo({ repo: 'alice/pushed', hubUrl, accessToken: ALICE.token, paths: ['push-src/model.safetensors'] });
    expect(info.lfs?.oid).toBe(createHash('sha256').update(weights).digest('hex'));
    // Private: anonymous gets 401, another user 404, as on the Hub.
    expect((await fetch(`${hubUrl}/api/models/alice/pushed`)).status).toBe(401);
    expect((await fetch(`${hubUrl}/api/models/alice/pushed`, { headers: { Authorization: `Bearer ${BOB.token}` } })).status).toBe(404);
  });

  it('a second push of the same weights uploads no bytes again', async () => {
    const src = join(work, 'push-src');
    server.stats.reset();
    await uploadFiles({ repo: 'alice/pushed', hubUrl, accessToken: ALICE.token, files: [pathToFileURL(src)], commitTitle: 'again' });
    expect(server.stats.log.filter((r) => r.method === 'PUT')).toEqual([]);
  });

  it('refuses: no token, a read-only token, another namespace, an existing repo', async () => {
    await expect(createRepo({ repo: 'alice/x', hubUrl, accessToken: '' as string })).rejects.toThrow();
    await expect(createRepo({ repo: 'bob/x', hubUrl, accessToken: BOB.token })).rejects.toThrow(/cannot create repos/);
    await expect(createRepo({ repo: 'org/x', hubUrl, accessToken: ALICE.token })).rejects.toThrow(/namespace "org"/);
    await expect(createRepo({ repo: 'alice/pushed', hubUrl, accessToken: ALICE.token })).rejects.toThrow(/already created/);
    await expect(
      uploadFiles({ repo: 'org/expert1', hubUrl, accessToken: ALICE.token, files: [{ path: 'x.txt', content: new Blob(['x']) }] }),
    ).rejects.toThrow(/namespace "org"/);
  });

  it('creates repos in an org the user belongs to, and a commit with a missing LFS object changes nothing', async () => {
    await createRepo({ repo: 'acme/model', hubUrl, accessToken: ALICE.token });
    const res = await fetch(`${hubUrl}/api/models/acme/model/commit/main`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ALICE.token}`, 'Content-Type': 'application/x-ndjson' },
      body: [
        { key: 'header', value: { summary: 'half' } },
        { key: 'file', value: { path: 'a.txt', content: Buffer.from('a').toString('base64'), encoding: 'base64' } },
        { key: 'lfsFile', value: { path: 'w.safetensors', algo: 'sha256', oid: 'a'.repeat(64), size: 5 } },
      ]
        .map((l) => JSON.stringify(l))
        .join('\n'),
    });
    expect(res.status).toBe(422);
    expect(((await res.json()) as { error: string }).error).toContain('never uploaded');
    expect(await readdir(fixture.file('acme/model', ''))).toEqual([]);
  });
});

describe('OAuth sign-in with the official client', () => {
  it('oauthLoginUrl → authorize → oauthHandleRedirect gives a token that writes', async () => {
    const storage: { codeVerifier?: string; nonce?: string } = {};
    const redirectUrl = 'http://localhost:4173/oauth-callback.html';
    const login = await oauthLoginUrl({ hubUrl, clientId: 'merge-studio-test', redirectUrl, scopes: 'openid profile write-repos manage-repos', localStorage: storage, state: 'x' });
    expect(login.startsWith(`${hubUrl}/oauth/authorize?`)).toBe(true);
    const authorized = await fetch(login, { redirect: 'manual' });
    expect(authorized.status).toBe(302);
    const back = authorized.headers.get('location')!;
    expect(back.startsWith(redirectUrl)).toBe(true);
    const result = await oauthHandleRedirect({ hubUrl, redirectedUrl: back, nonce: storage.nonce, codeVerifier: storage.codeVerifier });
    expect(result.userInfo.preferred_username).toBe('alice');
    expect(result.state).toBe('x');
    expect(result.scope).toContain('write-repos');
    const me = await whoAmI({ hubUrl, accessToken: result.accessToken });
    expect(me.name).toBe('alice');
    await createRepo({ repo: 'alice/via-oauth', hubUrl, accessToken: result.accessToken });
    // The code works once, and only with its verifier.
    await expect(oauthHandleRedirect({ hubUrl, redirectedUrl: back, nonce: storage.nonce, codeVerifier: storage.codeVerifier })).rejects.toThrow(/invalid_grant/);
  });

  it('refuses a wrong PKCE verifier, and a sign-in without manage-repos cannot create repos', async () => {
    const storage: { codeVerifier?: string; nonce?: string } = {};
    const redirectUrl = 'http://localhost:4173/cb';
    const login = await oauthLoginUrl({ hubUrl, clientId: 'c', redirectUrl, scopes: 'openid profile', localStorage: storage });
    const back = (await fetch(login, { redirect: 'manual' })).headers.get('location')!;
    await expect(oauthHandleRedirect({ hubUrl, redirectedUrl: back, nonce: storage.nonce, codeVerifier: 'x'.repeat(72) })).rejects.toThrow(/code_verifier/);
    const storage2: { codeVerifier?: string; nonce?: string } = {};
    const login2 = await oauthLoginUrl({ hubUrl, clientId: 'c', redirectUrl, scopes: 'openid profile', localStorage: storage2 });
    const back2 = (await fetch(login2, { redirect: 'manual' })).headers.get('location')!;
    const readOnly = await oauthHandleRedirect({ hubUrl, redirectedUrl: back2, nonce: storage2.nonce, codeVerifier: storage2.codeVerifier });
    await expect(createRepo({ repo: 'alice/nope', hubUrl, accessToken: readOnly.accessToken })).rejects.toThrow(/manage-repos/);
  });
});

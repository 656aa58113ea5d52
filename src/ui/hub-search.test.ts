/** The shelf's Hub search against the local Hub, and the folder helpers of publishing. */
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeHubRoot, type HubRoot } from '../cli/hub-server.fixtures.ts';
import { startHubServer, type HubServer } from '../cli/hub-server.ts';
import { sameArchitecture, searchHub, searchText } from './hub-search.ts';
import { filesOfPickedFolder } from './publish/folder.ts';

let fixture: HubRoot;
let server: HubServer;

beforeAll(async () => {
  fixture = await makeHubRoot({
    'org/llama-a': 'llama-bf16/expert1',
    'org/llama-b': 'llama-bf16/expert2',
    'org/no-weights': { 'config.json': '{}', 'pytorch_model.bin': 'x' },
  });
  await writeFile(fixture.file('org/llama-b', '.hub.json'), '{"downloads": 10}');
  server = await startHubServer({ root: fixture.root });
});

afterAll(async () => {
  await server.close();
  await fixture.cleanup();
});

describe('searchHub', () => {
  it('finds repos with safetensors, most downloaded first, with parameters, dtype and architecture', async () => {
    const hits = await searchHub({ hubUrl: server.url, query: 'org/' });
    expect(hits.map((h) => h.id)).toEqual(['org/llama-b', 'org/llama-a']);
    expect(hits[0]).toMatchObject({ downloads: 10, dtypes: ['BF16'], architecture: 'LlamaForCausalLM', modelType: 'llama', gated: false, private: false });
    expect(hits[0].parameters).toBeGreaterThan(200_000);
  });

  it('stops when aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('typed on'));
    await expect(searchHub({ hubUrl: server.url, query: 'org', signal: controller.signal })).rejects.toThrow('typed on');
  });

  it('searches the typed id without its revision, from two characters', () => {
    expect(searchText(' org/llama@v2 ')).toBe('org/llama');
    expect(searchText('o')).toBeNull();
  });

  it('compares architectures by class name, else by model type', () => {
    const hit = { id: 'x', downloads: 0, parameters: null, dtypes: [], architecture: 'LlamaForCausalLM', modelType: 'llama', gated: false, private: false };
    expect(sameArchitecture(hit, { architecture: 'LlamaForCausalLM', modelType: null })).toBe(true);
    expect(sameArchitecture(hit, { architecture: 'MistralForCausalLM', modelType: 'llama' })).toBe(false);
    expect(sameArchitecture({ ...hit, architecture: null }, { architecture: 'X', modelType: 'llama' })).toBe(true);
  });
});

describe('filesOfPickedFolder', () => {
  const file = (path: string) => Object.defineProperty(new File(['x'], path.split('/').pop()!), 'webkitRelativePath', { value: path });
  it('gives paths inside the chosen folder', () => {
    const got = filesOfPickedFolder([file('out/model.safetensors'), file('out/sub/a.json')]);
    expect(got?.name).toBe('out');
    expect(got?.files.map((f) => f.path)).toEqual(['model.safetensors', 'sub/a.json']);
    expect(filesOfPickedFolder([file('a/x'), file('b/y')])).toBeNull();
  });
});

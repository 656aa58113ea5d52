/**
 * Per-model download progress and the range cache, through the worker protocol: EngineClient ↔
 * EngineHost in-process, models opened from the local Hub-compatible server, and the bytes that
 * server sent (its stats) as the independent count.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHubServer, type HubServer } from '../../cli/hub-server.ts';
import { MemoryRangeCache } from '../../core/sources/cache.ts';
import type { HubProgress } from '../../core/sources/hub.ts';
import { parseRecipe } from '../../core/recipe/parse.ts';
import { methodLookup } from '../../gpu/methods/index.ts';
import { EngineClient, type EnginePort } from './client.ts';
import { EngineHost, type EngineHostOptions } from './host.ts';
import type { SourceProgressInfo, ToWorker } from './protocol.ts';
import { since, TransferMeter } from './transfer.ts';

const MODELS = resolve(__dirname, '../../../tests/fixtures/golden/models/llama-bf16');

/** Tensor data bytes of a safetensors file: its size less the 8-byte length and the header. */
function tensorBytes(file: string): number {
  const bytes = readFileSync(file);
  return bytes.length - 8 - Number(bytes.readBigUInt64LE(0));
}

function connect(opts: Partial<EngineHostOptions>) {
  const listeners: ((ev: MessageEvent) => void)[] = [];
  const host = new EngineHost({
    gpu: undefined,
    progressIntervalMs: 0,
    post: (m) => setTimeout(() => listeners.forEach((l) => l({ data: m } as MessageEvent)), 0),
    ...opts,
  });
  const port: EnginePort = {
    postMessage: (m: ToWorker) => setTimeout(() => void host.handle(m), 0),
    addEventListener: (type: string, l: (ev: never) => void) => {
      if (type === 'message') listeners.push(l as (ev: MessageEvent) => void);
    },
  };
  return new EngineClient(port);
}

const report = (file: string, bytesReceived: number, fromCache: boolean, rate = 0): HubProgress => ({
  repo: 'org/m',
  file,
  bytesReceived,
  bytesExpected: 1000,
  rate,
  fromCache,
});

describe('TransferMeter', () => {
  it('adds what each report adds to its file, split into network and cache bytes', () => {
    const meter = new TransferMeter();
    let heard = 0;
    const stop = meter.listen(() => heard++);
    meter.add(report('a.safetensors', 100, false, 50));
    const start = meter.reading();
    meter.add(report('a.safetensors', 300, true));
    meter.add(report('b.safetensors', 40, false, 80));
    meter.add(report('a.safetensors', 250, false)); // a stale count adds nothing
    expect(meter.reading()).toEqual({ received: 340, cached: 200 });
    expect(since(meter, start)).toEqual({ received: 240, cached: 200 });
    expect(meter.rate).toBe(0);
    expect(meter.filesProgress()).toEqual({ bytesReceived: 340, bytesExpected: 2000 });
    stop();
    meter.add(report('b.safetensors', 50, false));
    expect(heard).toBe(4);
  });
});

describe('Hub models in the worker: per-model progress and the range cache', () => {
  let hub: HubServer;
  const work = mkdtempSync(join(tmpdir(), 'merge-studio-transfer-'));
  const expected: Record<string, number> = {};

  beforeAll(async () => {
    for (const name of ['base', 'expert1']) {
      cpSync(join(MODELS, name), join(work, 'org', name), { recursive: true });
      expected[`org/${name}`] = tensorBytes(join(MODELS, name, 'model.safetensors'));
    }
    hub = await startHubServer({ root: work, port: 0 });
  });
  afterAll(async () => {
    await hub?.close();
    rmSync(work, { recursive: true, force: true });
  });

  const recipe = parseRecipe('models:\n  - model: org/expert1\n    parameters: {weight: 0.5}\nmerge_method: task_arithmetic\nbase_model: org/base\n', methodLookup);

  async function merge(client: EngineClient) {
    const reports: SourceProgressInfo[] = [];
    const outcome = await client.merge({ recipe, backend: 'cpu', seed: 0, maxShardBytes: 5e9, output: { kind: 'download', folderName: 'out' } }, () => {}, (p) =>
      reports.push(p),
    ).outcome;
    expect(outcome.status).toBe('done');
    const byRef = new Map<string, SourceProgressInfo[]>();
    for (const r of reports) byRef.set(r.ref, [...(byRef.get(r.ref) ?? []), r]);
    return byRef;
  }

  it('reports bytes per model that never decrease, all from the Hub and then all from the cache; clear and limit work', async () => {
    const cache = new MemoryRangeCache({ maxBytes: 100e6 });
    const client = connect({ rangeCache: cache });
    for (const repo of ['org/base', 'org/expert1']) {
      await client.open(repo, { kind: 'hub', repo, revision: 'main', hubUrl: hub.url });
    }

    hub.stats.reset();
    const first = await merge(client);
    expect([...first.keys()].sort()).toEqual(['org/base', 'org/expert1']);
    for (const [ref, reports] of first) {
      const received = reports.map((r) => r.bytesReceived);
      expect(received, `${ref}: bytes received in order`).toEqual([...received].sort((a, b) => a - b));
      expect(reports.length).toBeGreaterThan(2); // a first report, some while reading, the last
      expect(reports[0]).toMatchObject({ bytesReceived: 0, done: false });
      expect(reports.at(-1)).toMatchObject({ ref, done: true, bytesReceived: expected[ref], bytesExpected: expected[ref], cachedBytes: 0 });
      expect(reports.slice(0, -1).every((r) => !r.done && r.bytesExpected === expected[ref])).toBe(true);
    }
    const tensorsSent = hub.stats.bodyBytes('.safetensors');
    expect(tensorsSent).toBe(expected['org/base'] + expected['org/expert1']);
    expect(await client.cacheInfo()).toEqual({ available: true, bytes: await cache.size(), maxBytes: 100e6 });
    expect(await cache.size()).toBeGreaterThanOrEqual(tensorsSent);

    // The same merge again: every tensor byte from the cache, none from the server.
    hub.stats.reset();
    const second = await merge(client);
    for (const [ref, reports] of second) {
      expect(reports.at(-1)).toMatchObject({ done: true, bytesReceived: expected[ref], cachedBytes: expected[ref] });
    }
    expect(hub.stats.bodyBytes('.safetensors')).toBe(0);

    // Cleared: the next merge reads from the server again.
    expect(await client.clearCache()).toEqual({ available: true, bytes: 0, maxBytes: 100e6 });
    hub.stats.reset();
    const third = await merge(client);
    for (const [ref, reports] of third) expect(reports.at(-1)).toMatchObject({ bytesReceived: expected[ref], cachedBytes: 0 });
    expect(hub.stats.bodyBytes('.safetensors')).toBe(tensorsSent);

    // A lower limit evicts at once.
    const limited = await client.setCacheLimit(100_000);
    expect(limited).toMatchObject({ available: true, maxBytes: 100_000 });
    expect(limited.available && limited.bytes).toBeLessThanOrEqual(100_000);
    await expect(client.setCacheLimit(-5)).rejects.toThrow(/cache limit/);
  });

  it('without a cache, says so in words', async () => {
    const client = connect({});
    expect(await client.cacheInfo()).toEqual({ available: false, reason: expect.stringMatching(/no Cache API/) });
  });
});

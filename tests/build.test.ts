/**
 * The production build (`vite build`, as `npm run build` runs it) has no test API: no
 * `window.__mergeStudioTest` (which hands out the whole store, the Hub token included) and none of its
 * functions. A build in the e2e mode has it, which shows the check looks at the right thing.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'vite';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '..');
const out = mkdtempSync(join(tmpdir(), 'merge-studio-build-'));

afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Every file the build wrote, as text, by path. */
async function buildAll(mode: string): Promise<Map<string, string>> {
  const dir = join(out, mode);
  await build({ root: ROOT, configFile: join(ROOT, 'vite.config.ts'), mode, logLevel: 'silent', build: { outDir: dir, emptyOutDir: true } });
  const files = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(js|html|css|map)$/.test(e.name)) files.set(p, readFileSync(p, 'utf8'));
    }
  };
  walk(dir);
  return files;
}

const TEST_API_MARKS = ['__mergeStudioTest', 'useOpfsExport', 'readOpfsFiles', 'clearOpfs'];

describe('the production build', () => {
  it('contains none of the test API; the e2e build does', async () => {
    const prod = await buildAll('production');
    const text = [...prod.values()].join('\n');
    expect(text).toContain('merge-studio-export'); // the studio itself is there
    for (const mark of TEST_API_MARKS) expect(text, mark).not.toContain(mark);
    const e2e = [...(await buildAll('e2e')).values()].join('\n');
    for (const mark of TEST_API_MARKS) expect(e2e, mark).toContain(mark);
  }, 300_000);
});

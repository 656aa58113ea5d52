/**
 * Page object for the studio, used as a Playwright fixture: the steps a user takes, each through
 * the visible controls (labels, roles and dotted test ids), plus the typed test API for what a
 * headless browser cannot do by hand (the folder picker, reading OPFS).
 */
import { test as base, expect, type Locator, type Page, type TestInfo } from '@playwright/test';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestSnapshot } from '../src/ui/test-api.ts';

export const GOLDEN = fileURLToPath(new URL('../tests/fixtures/golden', import.meta.url));
const SCREENS = fileURLToPath(new URL('../test-results/screens', import.meta.url));

export class StudioPage {
  #shot = 0;

  constructor(
    readonly page: Page,
    readonly info: TestInfo,
  ) {}

  /**
   * Open the studio and record long main-thread tasks from the start. The backend is the GPU, picked
   * by the link (`?backend=gpu`), as before the studio measured backends on software adapters; pass
   * `backend: 'auto'` to let it measure and choose.
   */
  async open(path = '/', opts: { backend?: 'gpu' | 'cpu' | 'auto' } = {}): Promise<void> {
    const backend = opts.backend ?? 'gpu';
    if (backend !== 'auto' && !/[?&]backend=/.test(path)) {
      const hash = path.indexOf('#');
      const [before, after] = hash < 0 ? [path, ''] : [path.slice(0, hash), path.slice(hash)];
      path = `${before}${before.includes('?') ? '&' : '?'}backend=${backend}${after}`;
    }
    await this.page.addInitScript(() => {
      const w = window as unknown as { __longTasks: { start: number; duration: number }[] };
      w.__longTasks = [];
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) w.__longTasks.push({ start: e.startTime, duration: e.duration });
      }).observe({ type: 'longtask', buffered: true });
    });
    await this.page.goto(path);
    await expect(this.page.getByRole('heading', { name: 'Merge Studio' })).toBeVisible();
  }

  card(ref: string): Locator {
    return this.page.getByTestId(`shelf.model.${ref}`);
  }

  async waitReady(ref: string): Promise<void> {
    await expect(this.page.getByTestId(`shelf.model.${ref}.facts`)).toBeVisible({ timeout: 30_000 });
  }

  /**
   * Wait until the page's address holds the recipe on screen (the studio writes it once the recipe
   * has been still for a moment), e.g. before a reload that must bring the recipe back.
   */
  async waitForLink(): Promise<void> {
    const yaml = await this.recipeYaml();
    await expect
      .poll(
        () =>
          this.page.evaluate(() => {
            const encoded = /(?:^#|&)recipe=([^&]*)/.exec(location.hash)?.[1] ?? '';
            const bytes = Uint8Array.from(atob(encoded.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
            return new TextDecoder().decode(bytes);
          }),
        { timeout: 10_000 },
      )
      .toBe(yaml);
  }

  async waitForDemo(): Promise<void> {
    for (const n of ['base', 'expert-1', 'expert-2', 'expert-3']) await this.waitReady(`./demo/${n}`);
  }

  async removeAll(): Promise<void> {
    const buttons = this.page.locator('[data-testid^="shelf.model."][data-testid$=".remove"]');
    while ((await buttons.count()) > 0) await buttons.first().click();
  }

  async setHubEndpoint(url: string, token = ''): Promise<void> {
    await this.page.getByText('Settings', { exact: true }).click();
    const endpoint = this.page.getByLabel('Hub endpoint');
    await endpoint.fill(url);
    await endpoint.press('Tab');
    await this.page.getByLabel('Hub access token (gated repos)').fill(token);
    await this.page.getByText('Settings', { exact: true }).click();
  }

  async addHubModel(repo: string, revision = 'main'): Promise<void> {
    await this.page.getByLabel('Hub model').fill(repo);
    await this.page.getByLabel('Revision').fill(revision);
    await this.page.getByRole('button', { name: 'Add', exact: true }).click();
  }

  /** Drop files on the page as a user would: a `drop` event with a DataTransfer of File objects. */
  async dropFiles(files: { name: string; bytes: Uint8Array }[]): Promise<void> {
    const payload = files.map((f) => ({ name: f.name, base64: Buffer.from(f.bytes).toString('base64') }));
    await this.page.evaluate((list) => {
      const dt = new DataTransfer();
      for (const f of list) {
        const bin = atob(f.base64);
        const bytes = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
        dt.items.add(new File([bytes], f.name));
      }
      const target = document.querySelector('main') ?? document.body;
      target.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
      target.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
      target.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, payload);
  }

  /** The files of a model folder on disk, for dropFiles. */
  folderFiles(dir: string): { name: string; bytes: Uint8Array }[] {
    return readdirSync(dir).map((name) => ({ name, bytes: new Uint8Array(readFileSync(join(dir, name))) }));
  }

  async markBase(ref: string): Promise<void> {
    await this.page.getByTestId(`shelf.model.${ref}.base`).click();
    await expect(this.page.getByTestId(`shelf.model.${ref}.base`)).toHaveAttribute('aria-pressed', 'true');
  }

  async chooseMethod(name: string): Promise<void> {
    await this.page.getByLabel('Merge method').selectOption(name);
  }

  async snapshot(): Promise<TestSnapshot> {
    return this.page.evaluate(() => window.__mergeStudioTest!.snapshot());
  }

  async recipeYaml(): Promise<string> {
    return (await this.snapshot()).recipeYaml;
  }

  async useOpfsExport(folder: string): Promise<void> {
    await this.page.evaluate(async (name) => {
      await window.__mergeStudioTest!.clearOpfs();
      await window.__mergeStudioTest!.useOpfsExport(name);
    }, folder);
  }

  async readOpfs(path: string): Promise<Map<string, Buffer>> {
    const files = await this.page.evaluate((p) => window.__mergeStudioTest!.readOpfsFiles(p), path);
    return new Map(Object.entries(files).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
  }

  async listOpfs(path: string): Promise<string[]> {
    return this.page.evaluate((p) => window.__mergeStudioTest!.listOpfs(p), path);
  }

  /** Long tasks (> 50 ms, the browser's threshold) seen between two performance.now() times. */
  async longTasksBetween(from: number, to: number): Promise<{ start: number; duration: number }[]> {
    return this.page.evaluate(
      ([a, b]) => (window as unknown as { __longTasks: { start: number; duration: number }[] }).__longTasks.filter((t) => t.start + t.duration >= a && t.start <= b),
      [from, to] as const,
    );
  }

  async now(): Promise<number> {
    return this.page.evaluate(() => performance.now());
  }

  /** A screenshot of this step under test-results/screens/. */
  async shot(step: string): Promise<void> {
    mkdirSync(SCREENS, { recursive: true });
    const spec = this.info.titlePath[0].replace(/\.spec\.ts$/, '').replace(/[^\w.-]+/g, '-');
    const title = this.info.title.replace(/[^\w.-]+/g, '-').slice(0, 40);
    const n = String(++this.#shot).padStart(2, '0');
    await this.page.screenshot({ path: join(SCREENS, `${spec}-${title}-${n}-${step}.png`) });
  }
}

export const test = base.extend<{ studio: StudioPage }>({
  studio: async ({ page }, use, info) => {
    await use(new StudioPage(page, info));
  },
});

export { expect };

/**
 * "Answer at once", measured as a user feels it on the demo set: dragging a density slider keeps the
 * main thread free (no task over 50 ms of CPU time), "updating…" is on screen in the frame after the first move,
 * and the charts then show the new numbers. The slider → chart time is printed, with where it went
 * (the runner's performance marks: the debounce, the engine's run, the way back and the redraw), and
 * written to test-results/slider-to-chart.json (the README quotes it; no time limit is asserted here).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, test } from './studio.ts';

const OUT = fileURLToPath(new URL('../test-results/slider-to-chart.json', import.meta.url));

// Playwright's trace recorder snapshots the DOM on the page's main thread at every change: it is not
// what a user runs, and it would count as long tasks here.
test.use({ trace: 'off' });

test('dragging a density slider: no long task, "updating…" within a frame, then the new charts', async ({ studio, page }) => {
  // The studio measures both backends on this software adapter and picks the faster one by itself.
  await studio.open('/', { backend: 'auto' });
  await studio.waitForDemo();
  await expect(page.getByTestId('merge.backend.note')).toContainText('chosen: faster here (measured)', { timeout: 120_000 });
  await expect(page.getByTestId('merge.panel')).not.toContainText('slower');
  const panel = page.getByTestId('analysis.panel');
  await expect(panel.getByTestId('analysis.layers.line')).toBeVisible({ timeout: 120_000 });
  await expect(panel.getByTestId('analysis.updating')).toHaveCount(0, { timeout: 60_000 });
  await panel.getByTestId('analysis.layers.metric').selectOption('metric:keptFraction');
  const points = panel.getByTestId('analysis.layers.line').locator('circle[data-value]');
  const before = await points.evaluateAll((els) => els.map((e) => e.getAttribute('data-value')).join(','));

  const first = (await studio.snapshot()).recipeYaml.match(/- model: (\S+)/)![1];
  const slider = page.getByTestId(`model.${first}.param.density.slider`);
  await slider.scrollIntoViewIfNeeded();

  // In the page: for each input event, whether "updating…" is in the DOM at the next animation frame
  // (before that frame is painted); the time of the last input; when "updating…" goes away.
  await page.evaluate((testId) => {
    const w = window as unknown as { __feel: { frames: boolean[]; lastInput: number; settled: number | null } };
    w.__feel = { frames: [], lastInput: 0, settled: null };
    const el = document.querySelector(`[data-testid="${testId}"]`)!;
    el.addEventListener('input', () => {
      w.__feel.lastInput = performance.now();
      w.__feel.settled = null;
      requestAnimationFrame(() => w.__feel.frames.push(!!document.querySelector('[data-testid="analysis.updating"]')));
    });
    const panelEl = document.querySelector('[data-testid="analysis.panel"]')!;
    new MutationObserver(() => {
      if (w.__feel.lastInput > 0 && w.__feel.settled === null && !panelEl.querySelector('[data-testid="analysis.updating"]')) {
        w.__feel.settled = performance.now();
      }
    }).observe(panelEl, { subtree: true, childList: true, attributes: true });
  }, `model.${first}.param.density.slider`);

  // Chrome's trace of the drag: each main-thread task's CPU time, apart from the wall time the Long
  // Tasks API sees (on a loaded machine a task waits for a core, and its wall time grows). The
  // top-level tasks only: with the devtools timeline categories too, the trace itself slowed the page
  // and the worker about 2-3× (a slider → chart of 1.5 s traced that way, 0.55 s untraced). The
  // user-timing marks place the runner's marks on the trace's clock, to count the worker's CPU time
  // in its last run (on a loaded machine the run mostly waits for a core).
  const cdp = await page.context().newCDPSession(page);
  const events: TraceEvent[] = [];
  cdp.on('Tracing.dataCollected', (e) => events.push(...(e.value as unknown as TraceEvent[])));
  const traced = new Promise<void>((resolve) => cdp.once('Tracing.tracingComplete', () => resolve()));
  await cdp.send('Tracing.start', { categories: 'toplevel,blink.user_timing', transferMode: 'ReportEvents' });

  // Drag the thumb from its value to near the left end, in small steps, as a hand would.
  const box = (await slider.boundingBox())!;
  const value = Number(await slider.inputValue());
  const min = Number(await slider.getAttribute('min'));
  const max = Number(await slider.getAttribute('max'));
  const x0 = box.x + ((value - min) / (max - min)) * box.width;
  const x1 = box.x + box.width * 0.12;
  const y = box.y + box.height / 2;
  const started = await studio.now();
  await page.mouse.move(x0, y);
  await page.mouse.down();
  for (let i = 1; i <= 24; i++) {
    await page.mouse.move(x0 + ((x1 - x0) * i) / 24, y);
    await page.waitForTimeout(25);
  }
  await page.mouse.up();
  const dragged = await studio.now();

  await expect(panel.getByTestId('analysis.updating')).toHaveCount(0, { timeout: 60_000 });
  await expect.poll(() => points.evaluateAll((els) => els.map((e) => e.getAttribute('data-value')).join(',')), { timeout: 60_000 }).not.toBe(before);
  const feel = await page.evaluate(() => (window as unknown as { __feel: { frames: boolean[]; lastInput: number; settled: number | null } }).__feel);
  const ended = await studio.now();
  await cdp.send('Tracing.end');
  await traced;
  const cpu = mainThreadTaskCpuMs(events);
  const workerCpu = workerCpuMsOfLastRun(events);

  expect(feel.frames.length, 'input events during the drag').toBeGreaterThanOrEqual(5);
  expect(feel.frames.every(Boolean), '"updating…" shown in the frame after every move').toBe(true);
  const longTasks = await studio.longTasksBetween(started, ended);
  console.log(
    `main thread while dragging: ${cpu.length} tasks, the longest ${Math.max(0, ...cpu).toFixed(1)} ms of CPU; ` +
      `long tasks (wall time): ${longTasks.map((t) => Math.round(t.duration)).join(', ') || 'none'}`,
  );
  expect(cpu.length, "the trace has the renderer main thread's tasks").toBeGreaterThan(0);
  expect(Math.max(0, ...cpu), 'CPU time of the longest main-thread task').toBeLessThan(50);
  // The bound is on each task's CPU time: its wall time (the Long Tasks API) also counts the time it
  // waited for a core, which on a loaded 2-core machine (the worker, the GPU process and other jobs)
  // says more about the machine than about the studio. The wall times are printed above.

  expect(feel.settled).not.toBeNull();
  const sliderToChart = feel.settled! - feel.lastInput;
  const marks = await page.evaluate(() =>
    performance.getEntriesByType('mark').map((m) => ({ name: m.name, at: m.startTime, seconds: ((m as PerformanceMark).detail as { seconds?: number } | null)?.seconds })),
  );
  const lastMark = (name: string) => marks.filter((m) => m.name === name && m.at >= feel.lastInput).at(-1);
  const posted = lastMark('analysis.posted');
  const answered = lastMark('analysis.answered');
  const after = (m: { at: number } | undefined) => (m ? `+${(m.at - feel.lastInput).toFixed(0)} ms` : 'not seen');
  const backend = (await studio.snapshot()).backend;
  const speeds = await page.evaluate(() => window.__mergeStudioTest!.store.getState().backendSpeeds);
  console.log(
    `after the last input: run posted ${after(posted)}, answered ${after(answered)} (the engine's run: ${answered?.seconds !== undefined ? (answered.seconds * 1000).toFixed(0) : '?'} ms; ` +
      `the worker's CPU time from posted to answered: ${workerCpu?.toFixed(0) ?? '?'} ms), on screen +${sliderToChart.toFixed(0)} ms`,
  );
  console.log(
    `slider → chart: ${sliderToChart.toFixed(0)} ms on the ${backend} backend, chosen by measurement (GPU ${speeds?.gpuMs.toFixed(0)} ms, CPU ${speeds?.cpuMs.toFixed(0)} ms); drag of ${(dragged - started).toFixed(0)} ms, ${feel.frames.length} input events`,
  );
  mkdirSync(fileURLToPath(new URL('../test-results/', import.meta.url)), { recursive: true });
  const breakdown = { postedMs: posted && Math.round(posted.at - feel.lastInput), answeredMs: answered && Math.round(answered.at - feel.lastInput), engineMs: answered?.seconds !== undefined ? Math.round(answered.seconds * 1000) : undefined, workerCpuMs: workerCpu && Math.round(workerCpu) };
  writeFileSync(OUT, JSON.stringify({ sliderToChartMs: Math.round(sliderToChart), ...breakdown, backend, measured: speeds, inputs: feel.frames.length, date: new Date().toISOString() }, null, 2));
  await studio.shot('after-drag');
});

interface TraceEvent {
  name: string;
  ph: string;
  pid: number;
  tid: number;
  ts: number;
  dur?: number;
  tdur?: number;
  args?: { name?: string };
}

/** CPU time (ms) of each task the page's main thread ran, from a trace with thread timestamps (a task without one is not counted). */
function mainThreadTaskCpuMs(events: readonly TraceEvent[]): number[] {
  const main = events.find((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain');
  if (!main) return [];
  return events
    .filter((e) => e.pid === main.pid && e.tid === main.tid && e.ph === 'X' && e.tdur !== undefined && (e.name === 'ThreadControllerImpl::RunTask' || e.name === 'RunTask'))
    .map((e) => e.tdur! / 1000);
}

/**
 * CPU time (ms) the page's workers ran between the last 'analysis.posted' mark and the last
 * 'analysis.answered' mark (tasks starting in between), or undefined without both marks.
 */
function workerCpuMsOfLastRun(events: readonly TraceEvent[]): number | undefined {
  const main = events.find((e) => e.ph === 'M' && e.name === 'thread_name' && e.args?.name === 'CrRendererMain');
  const at = (name: string) => events.filter((e) => e.name === name && e.pid === main?.pid).map((e) => e.ts);
  const answered = Math.max(...at('analysis.answered'));
  const posted = Math.max(...at('analysis.posted').filter((ts) => ts <= answered));
  if (!Number.isFinite(answered) || !Number.isFinite(posted)) return undefined;
  const workers = new Set(events.filter((e) => e.ph === 'M' && e.name === 'thread_name' && e.pid === main?.pid && e.args?.name === 'DedicatedWorker thread').map((e) => e.tid));
  return (
    events
      .filter((e) => e.pid === main?.pid && workers.has(e.tid) && e.ph === 'X' && e.tdur !== undefined && (e.name === 'ThreadControllerImpl::RunTask' || e.name === 'RunTask'))
      .filter((e) => e.ts >= posted && e.ts <= answered)
      .reduce((sum, e) => sum + e.tdur!, 0) / 1000
  );
}

/**
 * The analysis views render from a result (static render, no DOM): titles, legends, axes, one cell
 * per matrix entry carrying its value, one point per layer and model, and the status lines.
 */
import { renderToStaticMarkup } from 'react-dom/server';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeMerge } from '../../gpu/analysis/analyze.ts';
import { ReferenceAnalysisOps } from '../../gpu/analysis/reference-ops.ts';
import { plus, recipeOf, sourcesOf, toyBase, toyDelta, toyModel } from '../../gpu/analysis/testing.testutil.ts';
import type { AnalysisResult } from '../../gpu/analysis/types.ts';
import { CpuBackend } from '../../gpu/cpu-backend.ts';
import { AnalysisPanel, isCurrent } from './AnalysisPanel.tsx';
import { heatmapColor } from './Heatmap.tsx';
import { LayerLineChart, layerX, LAYER_AXIS } from './LayerLineChart.tsx';
import { layerSeries } from './view-data.ts';

const recipe = recipeOf('ties', [
  { ref: 'expert-1', params: { weight: 1, density: 0.5 } },
  { ref: 'expert-2', params: { weight: 0.7, density: [0.2, 0.9] } },
  { ref: 'expert-3', params: { weight: 0.4, density: 0.8 } },
]);
let result: AnalysisResult;
const noDownload = () => undefined;

beforeAll(async () => {
  const models = [
    await toyModel('base', toyBase),
    await toyModel('expert-1', plus(toyBase, toyDelta(1))),
    await toyModel('expert-2', plus(toyBase, toyDelta(2))),
    await toyModel('expert-3', plus(toyBase, toyDelta(1))),
  ];
  result = await analyzeMerge({ recipe, sources: sourcesOf(models), ops: new ReferenceAnalysisOps(new CpuBackend()) });
});

/** Attribute values of every element matching `tag` that has `attr`. */
function attrs(html: string, tag: string, attr: string): string[] {
  const re = new RegExp(`<${tag}\\b[^>]*\\b${attr}="([^"]*)"`, 'g');
  return [...html.matchAll(re)].map((m) => m[1]);
}

describe('AnalysisPanel', () => {
  it('renders the cosine heatmap, the per-layer charts and the histogram with titles, legends and units', () => {
    const html = renderToStaticMarkup(<AnalysisPanel result={result} recipe={recipe} download={noDownload} />);
    for (const id of ['analysis.panel', 'analysis.cosine', 'analysis.layers.line', 'analysis.layers.heatmap', 'analysis.histogram']) {
      expect(html).toContain(`data-testid="${id}"`);
    }
    expect(html).toContain('Cosine similarity of task vectors, whole model');
    expect(html).toContain('Task-vector norm ‖δ‖ per layer');
    expect(html).toContain('Magnitude of task-vector entries |δ|, all tensors');
    expect(html).toContain('|δ| (log₂ scale)');
    expect(html).toContain('>layer<');
    // Every chart exports SVG, PNG and CSV.
    for (const id of ['analysis.cosine', 'analysis.layers.line', 'analysis.histogram']) {
      for (const ext of ['svg', 'png', 'csv']) expect(html).toContain(`data-testid="${id}.export.${ext}"`);
    }
    // The cosine cells carry the whole-model values (3 × 3); expert-1 and expert-3 share a task vector.
    const from = html.indexOf('data-testid="analysis.cosine"');
    const cells = html.slice(from, html.indexOf('</figure>', from));
    const values = attrs(cells, 'rect', 'data-value').map(Number);
    expect(values).toEqual(result.modelStats!.whole.cosine);
    expect(values[2]).toBeCloseTo(1, 6);
    // The legend names each model.
    for (const name of ['expert-1', 'expert-2', 'expert-3']) expect(html).toContain(`>${name}<`);
    // Method notes are shown.
    expect(html).toContain('data-testid="analysis.notes"');
  });

  it('shows the progress of a running analysis and the error of a failed one', () => {
    const running = renderToStaticMarkup(
      <AnalysisPanel
        result={null}
        recipe={recipe}
        status={{ status: 'running', progress: { tensorsDone: 3, tensorsTotal: 8, currentTensor: 'x', parts: { model: false, recipe: true } } }}
        onRun={() => undefined}
        onCancel={() => undefined}
        download={noDownload}
      />,
    );
    expect(running).toContain('Analyzing tensor 3 of 8 (method statistics)');
    expect(running).toContain('data-testid="analysis.cancel"');
    const failed = renderToStaticMarkup(
      <AnalysisPanel result={null} recipe={recipe} status={{ status: 'failed', error: { name: 'MethodError', message: 'ties: density 0' } }} download={noDownload} />,
    );
    expect(failed).toContain('role="alert"');
    expect(failed).toContain('ties: density 0');
  });

  it('marks a result computed for other models as out of date', () => {
    expect(isCurrent(result, recipe)).toBe(true);
    const other = { ...recipe, models: recipe.models.slice(0, 2) };
    expect(isCurrent(result, other)).toBe(false);
    const html = renderToStaticMarkup(<AnalysisPanel result={result} recipe={other} download={noDownload} />);
    expect(html).toContain('data-testid="analysis.stale"');
  });
});

describe('charts', () => {
  it('draws one point per layer and model at the curve editor’s layer positions', () => {
    const data = layerSeries(result, 'keptFraction');
    const html = renderToStaticMarkup(<LayerLineChart testId="t" data={data} fraction download={noDownload} />);
    const xs = attrs(html, 'circle', 'cx').map(Number);
    const layers = attrs(html, 'circle', 'data-layer').map(Number);
    const values = attrs(html, 'circle', 'data-value').map(Number);
    expect(values).toEqual(data.series.flatMap((s) => s.values));
    layers.forEach((k, j) => expect(xs[j]).toBeCloseTo(layerX(k, 2), 9));
    expect(layerX(0, 2)).toBe(LAYER_AXIS.x0);
    expect(layerX(1, 2)).toBe(LAYER_AXIS.x1);
    // Density [0.2, 0.9] for expert-2: layer 1 keeps more than layer 0.
    const e2 = data.series[1].values;
    expect(e2[1]!).toBeGreaterThan(e2[0]!);
  });

  it('the histogram draws one small plot per model (no series hides another)', () => {
    const html = renderToStaticMarkup(<AnalysisPanel result={result} recipe={recipe} download={noDownload} />);
    const histogram = html.slice(html.indexOf('data-testid="analysis.histogram"'));
    expect(attrs(histogram, 'g', 'data-series')).toEqual(['expert-1', 'expert-2', 'expert-3']);
    expect(histogram).toContain('one plot per model');
  });

  it('colours negative cosines red and positive ones blue, on a colour-blind-safe diverging scale', () => {
    const color = heatmapColor('diverging', 1);
    const rgb = (c: string) => c.match(/\d+/g)!.map(Number);
    const [r1, , b1] = rgb(color(-1));
    const [r2, , b2] = rgb(color(1));
    expect(r1).toBeGreaterThan(b1);
    expect(b2).toBeGreaterThan(r2);
    expect(color(null)).toBe('#dddddd');
  });
});

/**
 * The subspace views of the analysis panel (what subspace.ts computes): the subspace-overlap heatmap
 * beside the cosine one (whole model, per layer by pair, attention, MLP), the top singular values of
 * a chosen weight matrix, and the effective rank per layer. Each says in one line what it shows;
 * each exports SVG, PNG and CSV like the other charts. Plain data in, nothing run.
 */
import { useState } from 'react';
import type { AnalysisResult } from '../../gpu/analysis/types.ts';
import { Heatmap } from './Heatmap.tsx';
import { LayerLineChart } from './LayerLineChart.tsx';
import { SpectrumChart } from './SpectrumChart.tsx';
import {
  effectiveRankSeries,
  layerMatrices,
  overlapExplanation,
  overlapMatrix,
  spectrumData,
  spectrumExplanation,
  type OverlapScope,
} from './subspace-view-data.ts';

interface ViewProps {
  result: AnalysisResult;
  download(name: string, blob: Blob): void;
}

/** The three subspace views, as cells of the analysis grid (nothing when the result has no weight matrices). */
export function SubspaceViews({ result, download }: ViewProps) {
  if (!result.modelStats?.subspace || result.modelStats.subspace.whole.tensors === 0) return null;
  return (
    <>
      <OverlapView result={result} download={download} />
      <SpectrumView result={result} download={download} />
      <EffectiveRankView result={result} download={download} />
    </>
  );
}

function Note({ testId, children }: { testId: string; children: string }) {
  return (
    <p className="hint" data-testid={testId} style={{ margin: '0 0 6px' }}>
      {children}
    </p>
  );
}

const SCOPES: { key: string; label: string; scope: OverlapScope }[] = [
  { key: 'whole', label: 'Whole model', scope: { kind: 'whole' } },
  { key: 'per-layer', label: 'Per layer', scope: { kind: 'per-layer', tensorKind: 'all' } },
  { key: 'attention', label: 'Attention', scope: { kind: 'tensor-kind', tensorKind: 'attention' } },
  { key: 'mlp', label: 'MLP', scope: { kind: 'tensor-kind', tensorKind: 'mlp' } },
];

function OverlapView({ result, download }: ViewProps) {
  const [key, setKey] = useState('whole');
  const available = SCOPES.filter((o) => overlapMatrix(result, o.scope) !== null);
  const chosen = available.find((o) => o.key === key) ?? available[0];
  if (!chosen) return null;
  const data = overlapMatrix(result, chosen.scope)!;
  const perLayer = chosen.scope.kind === 'per-layer';
  const controls = (
    <div className="segmented" role="radiogroup" aria-label="Matrices compared" data-testid="analysis.overlap.scope">
      {available.map((o) => (
        <label key={o.key} className={chosen.key === o.key ? 'on' : ''}>
          <input type="radio" name="overlap-scope" checked={chosen.key === o.key} onChange={() => setKey(o.key)} data-testid={`analysis.overlap.scope.${o.key}`} />
          {o.label}
        </label>
      ))}
    </div>
  );
  return (
    <div className="subspace-view">
      <Note testId="analysis.overlap.note">{overlapExplanation(result)}</Note>
      <Heatmap
        testId="analysis.overlap"
        data={data}
        scale="sequential"
        rowTitle={perLayer ? 'model pair' : 'model'}
        columnTitle={perLayer ? 'layer' : 'model'}
        download={download}
        controls={controls}
      />
    </div>
  );
}

function SpectrumView({ result, download }: ViewProps) {
  const layers = Array.from({ length: result.numLayers }, (_, k) => k).filter((k) => layerMatrices(result, k).length > 0);
  const [layer, setLayer] = useState<number | null>(null);
  const [matrix, setMatrix] = useState<string | null>(null);
  if (layers.length === 0) return null;
  const shownLayer = layer !== null && layers.includes(layer) ? layer : layers[0];
  const matrices = layerMatrices(result, shownLayer);
  const shownMatrix = matrix !== null && matrices.includes(matrix) ? matrix : matrices[0];
  const data = spectrumData(result, shownLayer, shownMatrix);
  if (!data) return null;
  const controls = (
    <>
      <label className="inline-field">
        Layer
        <select value={shownLayer} onChange={(e) => setLayer(Number(e.target.value))} data-testid="analysis.spectrum.layer">
          {layers.map((k) => (
            <option key={k} value={k}>
              {k}
            </option>
          ))}
        </select>
      </label>
      <label className="inline-field">
        Matrix
        <select value={shownMatrix} onChange={(e) => setMatrix(e.target.value)} data-testid="analysis.spectrum.matrix">
          {matrices.map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </select>
      </label>
    </>
  );
  return (
    <div className="subspace-view">
      <Note testId="analysis.spectrum.note">{spectrumExplanation(data)}</Note>
      <SpectrumChart testId="analysis.spectrum" data={data} download={download} controls={controls} />
    </div>
  );
}

const RANK_KINDS = [
  { key: 'all', label: 'All matrices' },
  { key: 'attention', label: 'Attention' },
  { key: 'mlp', label: 'MLP' },
] as const;

function EffectiveRankView({ result, download }: ViewProps) {
  const [kind, setKind] = useState<'all' | 'attention' | 'mlp'>('all');
  const kinds = RANK_KINDS.filter((o) => effectiveRankSeries(result, o.key) !== null);
  const shown = kinds.find((o) => o.key === kind)?.key ?? kinds[0]?.key;
  if (!shown) return null;
  const data = effectiveRankSeries(result, shown)!;
  const controls = (
    <label className="inline-field">
      Matrices
      <select value={shown} onChange={(e) => setKind(e.target.value as typeof kind)} data-testid="analysis.erank.kind">
        {kinds.map((o) => (
          <option key={o.key} value={o.key}>
            {o.label}
          </option>
        ))}
      </select>
    </label>
  );
  return (
    <div className="subspace-view">
      <Note testId="analysis.erank.note">
        {`How spread out each fine-tune's change is, layer by layer: 1 when one direction dominates, ${result.modelStats!.subspace.rank} when the top ${result.modelStats!.subspace.rank} singular values are equal.`}
      </Note>
      <LayerLineChart testId="analysis.erank" data={data} fraction={false} download={download} controls={controls} />
    </div>
  );
}

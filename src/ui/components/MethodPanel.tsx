/**
 * The method picker and its form, generated from the method descriptors: global parameters, then
 * one block per model of the merge with its per-model parameters, and the all-models values
 * (top-level fallbacks of per-model parameters, as mergekit allows).
 */
import { memo } from 'react';
import { useShallow } from 'zustand/react/shallow';
import type { ParamSpec } from '../../core/params.ts';
import type { ParamValue } from '../../core/recipe/types.ts';
import { METHODS } from '../../gpu/methods/index.ts';
import { findMethod, initialValue, valueMode } from '../recipe-model.ts';
import { LiveSummaryCell, LiveSummaryHead } from '../analysis/LiveSummary.tsx';
import { useStudioAnalysis } from '../analysis/studio-analysis.tsx';
import { useStudio } from '../store-context.tsx';
import { ParamCell, ParamField, WideEditor } from './ParamField.tsx';

/** Layers for the curve editors: the base's, else the first loaded model's; null while none is loaded. */
function useNumLayers(): number | null {
  return useStudio((s) => {
    const refs = [s.recipe.baseModel, ...s.recipe.models.map((m) => m.model)];
    for (const ref of refs) {
      const m = s.shelf.find((x) => x.ref === ref);
      if (m?.load.status === 'ready' && m.load.summary.numLayers > 0) return m.load.summary.numLayers;
    }
    return null;
  });
}

function describe(value: ParamValue | undefined): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) return value.every((v) => typeof v === 'number') ? `curve [${value.join(', ')}]` : `${value.length} rules`;
  return String(value);
}

function fallbackFor(spec: ParamSpec, allModels: ParamValue | undefined): { text: string; start: number | boolean | string | undefined } {
  if (allModels !== undefined) return { text: `uses the all-models value: ${describe(allModels)}`, start: typeof allModels === 'number' ? allModels : undefined };
  if (spec.default !== undefined) return { text: `default ${String(spec.default)}`, start: spec.default };
  return { text: spec.required ? 'required: set a value' : 'not set', start: spec.required ? initialValue(spec, 'model') : undefined };
}

export function MethodPanel() {
  const methodName = useStudio((s) => s.recipe.mergeMethod);
  const setMethod = useStudio((s) => s.setMethod);
  const method = findMethod(methodName);
  const numLayers = useNumLayers();

  return (
    <section id="method" className="panel method-panel" aria-labelledby="method-title" tabIndex={-1}>
      <header className="panel-head">
        <h2 id="method-title">Method</h2>
      </header>
      <div className="method-picker">
        <label htmlFor="method-select">Merge method</label>
        <select id="method-select" value={methodName} onChange={(e) => setMethod(e.target.value)} data-testid="method.select">
          {METHODS.map((m) => (
            <option key={m.name} value={m.name}>
              {m.prettyName} ({m.name})
            </option>
          ))}
        </select>
      </div>
      {method ? (
        <>
          <p className="method-help">
            {method.help}
            {method.referenceUrl ? (
              <>
                {' '}
                <a href={method.referenceUrl} target="_blank" rel="noreferrer">
                  Reference
                </a>
              </>
            ) : null}
          </p>
          <p className="method-needs">{baseNeeds(method.base, method.minModels, method.maxModels)}</p>
          <GlobalParams params={method.params} numLayers={numLayers} />
          <ModelParams params={method.perModelParams} numLayers={numLayers} />
        </>
      ) : (
        <p className="error-text">Unknown method {methodName}</p>
      )}
    </section>
  );
}

function baseNeeds(base: 'required' | 'optional' | 'unused', min: number, max: number | undefined): string {
  const count = max === undefined ? `${min} or more models` : min === max ? `${min} model${min > 1 ? 's' : ''}` : `${min} to ${max} models`;
  const b = base === 'required' ? 'a base model and ' : base === 'optional' ? 'an optional base model and ' : '';
  return `Takes ${b}${count} in the merge${base === 'unused' ? ' (no base model)' : ''}.`;
}

function GlobalParams({ params, numLayers }: { params: readonly ParamSpec[]; numLayers: number | null }) {
  const values = useStudio(useShallow((s) => params.map((p) => s.recipe.parameters[p.name])));
  const setGlobalParam = useStudio((s) => s.setGlobalParam);
  if (params.length === 0) return null;
  return (
    <fieldset className="param-group">
      <legend>Method parameters</legend>
      <div className="param-grid">
        {params.map((spec, i) => (
          <ParamField
            key={spec.name}
            spec={spec}
            value={values[i]}
            fallbackText={spec.default !== undefined ? `default ${String(spec.default)}` : 'required: set a value'}
            fallbackNumber={spec.default ?? initialValue(spec, 'global')}
            onChange={(v) => setGlobalParam(spec.name, v)}
            numLayers={numLayers}
            subject={spec.name}
            testId={`method.param.${spec.name}`}
          />
        ))}
      </div>
    </fieldset>
  );
}

function ModelParams({ params, numLayers }: { params: readonly ParamSpec[]; numLayers: number | null }) {
  const refs = useStudio(useShallow((s) => s.recipe.models.map((m) => m.model)));
  const topLevel = useStudio(useShallow((s) => params.map((p) => s.recipe.parameters[p.name])));
  const setGlobalParam = useStudio((s) => s.setGlobalParam);
  if (params.length === 0) return null;
  const live = useStudioAnalysis() !== null;
  const columns = { gridTemplateColumns: `minmax(90px, 170px) repeat(${params.length}, minmax(164px, 1fr))${live ? ' minmax(112px, 170px)' : ''}` };
  return (
    <fieldset className="param-group">
      <legend>Per-model parameters</legend>
      {refs.length === 0 ? <p className="hint">Add models to the merge to set their parameters.</p> : null}
      <div className="param-table" style={columns} role="table" aria-label="Per-model parameters">
        <div className="param-table-row head" role="row">
          <div role="columnheader" className="param-col-model">
            Model
          </div>
          {params.map((spec) => (
            <div key={spec.name} role="columnheader" className="param-col">
              <span className="param-name">
                {spec.name}
                {spec.required && spec.default === undefined ? <span className="required" aria-label="required">*</span> : null}
              </span>
              <span className="param-help">{spec.help}</span>
            </div>
          ))}
          <LiveSummaryHead />
        </div>
        {refs.map((ref) => (
          <ModelRow key={ref} modelRef={ref} params={params} topLevel={topLevel} numLayers={numLayers} />
        ))}
      </div>
      <details className="all-models" open={topLevel.some((v) => v !== undefined)}>
        <summary>All models (fallback values)</summary>
        <p className="hint">Used by every model that does not set its own value (mergekit's top-level parameters).</p>
        <div className="param-grid">
          {params.map((spec, i) => (
            <ParamField
              key={spec.name}
              spec={spec}
              value={topLevel[i]}
              fallbackText={spec.default !== undefined ? `default ${String(spec.default)}` : 'not set'}
              fallbackNumber={spec.default ?? initialValue(spec, 'model')}
              onChange={(v) => setGlobalParam(spec.name, v)}
              numLayers={numLayers}
              subject={`${spec.name} for all models`}
              testId={`models.all.param.${spec.name}`}
            />
          ))}
        </div>
      </details>
    </fieldset>
  );
}

/**
 * One model's row: it re-renders only when that model's values (or the all-models values) change,
 * so moving one slider does not redraw the others' rows.
 */
const ModelRow = memo(function ModelRow({
  modelRef,
  params,
  topLevel,
  numLayers,
}: {
  modelRef: string;
  params: readonly ParamSpec[];
  topLevel: readonly (ParamValue | undefined)[];
  numLayers: number | null;
}) {
  const entry = useStudio((s) => s.recipe.models.find((m) => m.model === modelRef));
  const isBase = useStudio((s) => s.recipe.baseModel === modelRef);
  const setModelParam = useStudio((s) => s.setModelParam);
  if (!entry) return null;
  const fields = params.map((spec, i) => {
    const fb = fallbackFor(spec, topLevel[i]);
    return {
      spec,
      value: entry.parameters[spec.name],
      fallbackText: fb.text,
      fallbackNumber: fb.start,
      onChange: (v: ParamValue | undefined) => setModelParam(modelRef, spec.name, v),
      numLayers,
      subject: `${spec.name} of ${modelRef}`,
      testId: `model.${modelRef}.param.${spec.name}`,
    };
  });
  return (
    <div className="param-table-row" role="row" data-testid={`model.${modelRef}`}>
      <div role="rowheader" className="param-col-model" title={modelRef}>
        {modelRef}
        {isBase ? <span className="badge">base</span> : null}
      </div>
      {fields.map((f) => (
        <div key={f.spec.name} role="cell">
          <ParamCell {...f} />
        </div>
      ))}
      <LiveSummaryCell modelRef={modelRef} />
      {fields
        .filter((f) => valueMode(f.value) !== 'scalar')
        .map((f) => (
          <div key={`${f.spec.name}-wide`} className="param-wide" role="cell">
            <p className="param-wide-title">
              <span className="param-name">{f.spec.name}</span> of {modelRef}: {valueMode(f.value) === 'curve' ? 'a value per layer' : 'values by tensor name'}
            </p>
            <WideEditor {...f} />
          </div>
        ))}
    </div>
  );
});

/**
 * One parameter's input, generated from its ParamSpec: a checkbox for booleans, a select for enums,
 * and for numbers a slider with a number input that can switch to a per-layer curve or to rules by
 * tensor name (attention vs MLP). `value` undefined means "not set here": the field shows what
 * applies instead (the default, or the all-models value) and setting it writes the value.
 */
import { useId } from 'react';
import type { ParamSpec } from '../../core/params.ts';
import type { ParamCondition, ParamValue } from '../../core/recipe/types.ts';
import { tidyNumber } from '../format.ts';
import { convertValue, hardRange, RULE_FILTERS, sliderRange, sliderStep, valueMode, type ValueMode } from '../recipe-model.ts';
import { CurveEditor } from './CurveEditor.tsx';

export interface ParamFieldProps {
  spec: ParamSpec;
  value: ParamValue | undefined;
  /** What applies when `value` is undefined, in words ("default 1", "all models: 0.5"). */
  fallbackText: string;
  /** The number a new value starts from when the field is unset. */
  fallbackNumber: number | boolean | string | undefined;
  onChange(value: ParamValue | undefined): void;
  /** Layers of the merge's models; null while no model is loaded. */
  numLayers: number | null;
  /** "density of org/expert1", for labels. */
  subject: string;
  testId: string;
}

const MODE_LABELS: Record<ValueMode, string> = { scalar: 'Value', curve: 'Curve', rules: 'Rules' };

export function ParamField(props: ParamFieldProps) {
  const { spec, value, fallbackText, onChange, testId } = props;
  const id = useId();
  const unset = value === undefined;
  const numeric = spec.kind === 'number' || spec.kind === 'integer';
  const mode = valueMode(value);
  const wide = numeric && mode !== 'scalar';

  return (
    <div className={`param-field${wide ? ' is-wide' : ''}${unset ? ' is-unset' : ''}`} data-testid={testId}>
      <div className="param-head">
        <label htmlFor={`${id}-input`} className="param-name" title={spec.help}>
          {spec.name}
          {spec.required && spec.default === undefined ? <span className="required" aria-label="required">*</span> : null}
        </label>
        <FieldTools {...props} />
      </div>
      <p className="param-help">{spec.help}</p>
      {wide ? <WideEditor {...props} /> : <FieldBody {...props} inputId={`${id}-input`} />}
      {unset ? <p className="param-fallback">{fallbackText}</p> : null}
    </div>
  );
}

/** Mode switch (numbers) and reset button of a field. */
function FieldTools(props: ParamFieldProps) {
  const { spec, value, fallbackText, onChange, testId } = props;
  const numeric = spec.kind === 'number' || spec.kind === 'integer';
  return (
    <>
      {numeric ? <ModeSwitch mode={valueMode(value)} onSelect={(m) => onChange(convertValue(value, m, num(props), props.numLayers))} testId={testId} subject={props.subject} /> : null}
      {value !== undefined ? (
        <button type="button" className="reset" onClick={() => onChange(undefined)} aria-label={`Reset ${props.subject}`} title={`Reset (${fallbackText})`} data-testid={`${testId}.reset`}>
          ↺
        </button>
      ) : (
        <span className="reset-space" aria-hidden="true" />
      )}
    </>
  );
}

/**
 * The compact form of a field, for a table cell: tools and the input; a curve or rules value shows a
 * summary here and its editor in a WideEditor row below.
 */
export function ParamCell(props: ParamFieldProps) {
  const { spec, value, fallbackText, testId } = props;
  const mode = valueMode(value);
  const numeric = spec.kind === 'number' || spec.kind === 'integer';
  return (
    <div className={`param-cell${value === undefined ? ' is-unset' : ''}`} data-testid={testId} title={value === undefined ? fallbackText : undefined}>
      <div className="param-cell-tools">
        <FieldTools {...props} />
      </div>
      {numeric && mode !== 'scalar' ? (
        <p className="param-summary">{mode === 'curve' ? `per layer: ${(value as number[]).join(' → ')}` : `${(value as ParamCondition[]).length} rules by tensor name (below)`}</p>
      ) : (
        <FieldBody {...props} inputId={`${testId}-input`} />
      )}
    </div>
  );
}

/** The curve or rules editor of a number field (nothing for a scalar). */
export function WideEditor(props: ParamFieldProps) {
  const { value, onChange } = props;
  const mode = valueMode(value);
  if (mode === 'curve') return <CurveField {...props} values={value as number[]} onValues={onChange} />;
  if (mode === 'rules') return <RulesField {...props} rules={value as ParamCondition[]} />;
  return null;
}

function num(props: ParamFieldProps): number {
  const f = props.fallbackNumber;
  if (typeof f === 'number') return f;
  const r = sliderRange(props.spec);
  return props.spec.required ? r.min + (r.max - r.min) / 2 : r.min;
}

function ModeSwitch({ mode, onSelect, testId, subject }: { mode: ValueMode; onSelect(m: ValueMode): void; testId: string; subject: string }) {
  const name = useId();
  return (
    <div className="mode-switch" role="radiogroup" aria-label={`How ${subject} is given`}>
      {(Object.keys(MODE_LABELS) as ValueMode[]).map((m) => (
        <label key={m} className={mode === m ? 'is-on' : ''} title={m === 'curve' ? 'A value per layer (gradient)' : m === 'rules' ? 'Different values for attention and MLP tensors' : 'One value for every tensor'}>
          <input type="radio" name={name} checked={mode === m} onChange={() => onSelect(m)} data-testid={`${testId}.mode.${m}`} />
          {MODE_LABELS[m]}
        </label>
      ))}
    </div>
  );
}

function FieldBody(props: ParamFieldProps & { inputId: string }) {
  const { spec, value, onChange, inputId, subject, testId } = props;
  switch (spec.kind) {
    case 'boolean': {
      const checked = typeof value === 'boolean' ? value : props.fallbackNumber === true;
      return (
        <label className="check">
          <input id={inputId} type="checkbox" checked={checked} onChange={(e) => onChange(e.target.checked)} data-testid={`${testId}.input`} />
          {checked ? 'on' : 'off'}
        </label>
      );
    }
    case 'enum': {
      const current = typeof value === 'string' ? value : String(props.fallbackNumber ?? '');
      return (
        <select id={inputId} value={current} onChange={(e) => onChange(e.target.value)} data-testid={`${testId}.input`}>
          {(spec.options ?? []).map((o) => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
        </select>
      );
    }
    case 'number':
    case 'integer':
      // Curves and rules are edited in a WideEditor; here the value is one number.
      return <NumberInput spec={spec} value={typeof value === 'number' ? value : num(props)} onChange={onChange} inputId={inputId} label={subject} testId={testId} dim={value === undefined} />;
    default: {
      const never: never = spec.kind;
      throw new Error(`unknown parameter kind ${String(never)}`);
    }
  }
}

/** Slider over the soft range + number input over the hard range. */
export function NumberInput({ spec, value, onChange, inputId, label, testId, dim }: { spec: ParamSpec; value: number; onChange(v: number): void; inputId?: string; label: string; testId: string; dim?: boolean }) {
  const slider = sliderRange(spec);
  const hard = hardRange(spec);
  const step = sliderStep(spec);
  const clampHard = (v: number) => Math.min(Math.max(v, hard.min), hard.max);
  return (
    <div className={`number-input${dim ? ' is-dim' : ''}`}>
      <input
        type="range"
        min={slider.min}
        max={slider.max}
        step={step}
        value={Math.min(Math.max(value, slider.min), slider.max)}
        onChange={(e) => onChange(tidyNumber(Number(e.target.value)))}
        aria-label={`${label} (slider)`}
        data-testid={`${testId}.slider`}
      />
      <input
        id={inputId}
        type="number"
        min={Number.isFinite(hard.min) ? hard.min : undefined}
        max={Number.isFinite(hard.max) ? hard.max : undefined}
        step={step}
        value={tidyNumber(value)}
        onChange={(e) => {
          if (e.target.value === '' || Number.isNaN(e.target.valueAsNumber)) return;
          const v = clampHard(e.target.valueAsNumber);
          onChange(spec.kind === 'integer' ? Math.round(v) : v);
        }}
        aria-label={label}
        data-testid={`${testId}.number`}
      />
    </div>
  );
}

function CurveField(props: ParamFieldProps & { values: number[]; onValues(v: number[]): void }) {
  const { spec, values, onValues, numLayers, subject, testId } = props;
  const range = sliderRange(spec);
  return (
    <CurveEditor
      values={values}
      onChange={onValues}
      numLayers={numLayers}
      range={range}
      bounds={hardRange(spec)}
      step={sliderStep(spec)}
      label={subject}
      testId={`${testId}.curve`}
    />
  );
}

/** `{filter, value}` rules: the first whose filter is in the tensor name applies; the last catches the rest. */
function RulesField(props: ParamFieldProps & { rules: ParamCondition[] }) {
  const { spec, rules, onChange, numLayers, subject, testId } = props;
  const listId = useId();
  const update = (i: number, rule: ParamCondition) => onChange(rules.map((r, k) => (k === i ? rule : r)));
  const fallback = typeof rules[rules.length - 1]?.value === 'number' ? (rules[rules.length - 1].value as number) : num(props);
  return (
    <div className="rules">
      <datalist id={listId}>
        {RULE_FILTERS.map((r) => (
          <option key={r.filter} value={r.filter}>
            {r.label}
          </option>
        ))}
      </datalist>
      <ol>
        {rules.map((rule, i) => {
          const inner = Array.isArray(rule.value) ? 'curve' : 'scalar';
          const ruleSubject = `${subject}, rule ${i + 1}`;
          return (
            <li key={i} className="rule" data-testid={`${testId}.rule.${i}`}>
              <div className="rule-head">
                <label>
                  <span className="rule-label">{rule.filter === undefined ? 'Everything else' : 'Tensors containing'}</span>
                  {rule.filter !== undefined ? (
                    <input
                      type="text"
                      list={listId}
                      value={rule.filter}
                      onChange={(e) => update(i, { ...rule, filter: e.target.value })}
                      aria-label={`${ruleSubject}: tensor name contains`}
                      data-testid={`${testId}.rule.${i}.filter`}
                    />
                  ) : null}
                </label>
                <label className="check small">
                  <input
                    type="checkbox"
                    checked={inner === 'curve'}
                    onChange={(e) => {
                      const base = Array.isArray(rule.value) ? rule.value[0] : typeof rule.value === 'number' ? rule.value : fallback;
                      update(i, { ...rule, value: e.target.checked ? convertValue(base, 'curve', base, numLayers) as number[] : base });
                    }}
                    data-testid={`${testId}.rule.${i}.per-layer`}
                  />
                  per layer
                </label>
                {rules.length > 1 ? (
                  <button type="button" className="small ghost" onClick={() => onChange(rules.filter((_, k) => k !== i))} aria-label={`Remove ${ruleSubject}`}>
                    Remove
                  </button>
                ) : null}
              </div>
              {Array.isArray(rule.value) ? (
                <CurveEditor
                  values={rule.value}
                  onChange={(v) => update(i, { ...rule, value: v })}
                  numLayers={numLayers}
                  range={sliderRange(spec)}
                  bounds={hardRange(spec)}
                  step={sliderStep(spec)}
                  label={ruleSubject}
                  testId={`${testId}.rule.${i}.curve`}
                />
              ) : typeof rule.value === 'number' ? (
                <NumberInput spec={spec} value={rule.value} onChange={(v) => update(i, { ...rule, value: v })} label={ruleSubject} testId={`${testId}.rule.${i}`} />
              ) : (
                <span>{String(rule.value)}</span>
              )}
            </li>
          );
        })}
      </ol>
      <button
        type="button"
        className="small"
        onClick={() => {
          const catchAll = rules.findIndex((r) => r.filter === undefined);
          const added: ParamCondition = { filter: '', value: fallback };
          onChange(catchAll < 0 ? [...rules, added] : [...rules.slice(0, catchAll), added, ...rules.slice(catchAll)]);
        }}
        data-testid={`${testId}.rule.add`}
      >
        Add rule
      </button>
    </div>
  );
}

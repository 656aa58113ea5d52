/**
 * Per-layer curve editor: d3 scales and line generator, SVG rendered by React. Control points are
 * dragged with the pointer or moved with the keyboard (focus a point: ↑/↓ value, ←/→ one layer,
 * Shift for ×10, Delete removes an inner point, Insert or "+" adds a point). Dots on the layer grid
 * show the value each layer gets; the curve leaves the editor as a gradient list (see curve.ts).
 */
import { line, scaleLinear } from 'd3';
import { useEffect, useMemo, useRef, useState, type KeyboardEvent, type PointerEvent } from 'react';
import {
  curveToGradient,
  evalCurve,
  gradientToCurve,
  insertPoint,
  layerT,
  movePoint,
  removePoint,
  roundValue,
  type CurvePoint,
  type ValueBounds,
} from '../curve/curve.ts';

export interface CurveEditorProps {
  values: readonly number[];
  onChange(values: number[]): void;
  /** Layers of the model; null when unknown (no model loaded): the points' count stands in. */
  numLayers: number | null;
  /** The y axis (the parameter's slider range, widened to fit the values). */
  range: ValueBounds;
  /** Values the parameter may take. */
  bounds: ValueBounds;
  step: number;
  /** What is edited, for screen readers: "density of org/expert1". */
  label: string;
  testId: string;
}

const WIDTH = 520;
const HEIGHT = 160;
const M = { top: 12, right: 14, bottom: 26, left: 46 };
/** Space between the frame and the first / last layer, so end points are not cut. */
const INSET = 10;

export function CurveEditor({ values, onChange, numLayers, range, bounds, step, label, testId }: CurveEditorProps) {
  const [points, setPoints] = useState<CurvePoint[]>(() => gradientToCurve(values));
  const layers = numLayers ?? Math.max(2, points.length);
  const [focused, setFocused] = useState<number | null>(null);
  const dragging = useRef<number | null>(null);
  const svgRef = useRef<SVGSVGElement>(null);

  // Follow the value when it changes from outside (import, mode switch), not when it is our own echo.
  const key = values.join(',');
  useEffect(() => {
    if (curveToGradient(points, layers).join(',') !== key) setPoints(gradientToCurve(values));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, layers]);

  // Headroom so points at the ends of the range are not cut by the frame.
  const lo0 = Math.min(range.min, ...points.map((p) => p.value));
  const hi0 = Math.max(range.max, ...points.map((p) => p.value));
  const pad = (hi0 - lo0) * 0.06 || 0.5;
  const lo = lo0 - pad;
  const hi = hi0 + pad;
  const x = useMemo(() => scaleLinear().domain([0, 1]).range([M.left + INSET, WIDTH - M.right - INSET]), []);
  const y = useMemo(() => scaleLinear().domain([lo, hi]).range([HEIGHT - M.bottom, M.top]), [lo, hi]);
  const path = line<CurvePoint>()
    .x((p) => x(p.t))
    .y((p) => y(p.value))(points);
  const layerTicks = Array.from({ length: layers }, (_, k) => k);
  const shownLayerTicks = layers <= 16 ? layerTicks : layerTicks.filter((k) => k % Math.ceil(layers / 12) === 0 || k === layers - 1);

  const commit = (next: CurvePoint[]) => {
    setPoints(next);
    onChange(curveToGradient(next, layers));
  };

  const toData = (ev: PointerEvent): CurvePoint => {
    const svg = svgRef.current!;
    const box = svg.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * WIDTH;
    const py = ((ev.clientY - box.top) / box.height) * HEIGHT;
    return { t: Math.min(1, Math.max(0, x.invert(px))), value: roundToStep(y.invert(py), step) };
  };

  const onPointerMove = (ev: PointerEvent) => {
    if (dragging.current === null) return;
    const at = toData(ev);
    setPoints((prev) => movePoint(prev, dragging.current!, at, bounds));
  };
  const endDrag = () => {
    if (dragging.current === null) return;
    dragging.current = null;
    commit(points);
  };

  const onKeyDown = (i: number, ev: KeyboardEvent) => {
    const big = ev.shiftKey ? 10 : 1;
    const layerStep = layers > 1 ? 1 / (layers - 1) : 0.25;
    const p = points[i];
    let next: CurvePoint[] | null = null;
    switch (ev.key) {
      case 'ArrowUp':
        next = movePoint(points, i, { value: roundToStep(p.value + step * big, step) }, bounds);
        break;
      case 'ArrowDown':
        next = movePoint(points, i, { value: roundToStep(p.value - step * big, step) }, bounds);
        break;
      case 'ArrowRight':
        next = movePoint(points, i, { t: p.t + layerStep * big }, bounds);
        break;
      case 'ArrowLeft':
        next = movePoint(points, i, { t: p.t - layerStep * big }, bounds);
        break;
      case 'Delete':
      case 'Backspace':
        next = removePoint(points, i);
        if (next.length !== points.length) setFocused(Math.max(0, i - 1));
        break;
      case 'Insert':
      case '+': {
        const right = points[Math.min(i + 1, points.length - 1)];
        const left = points[Math.min(i, points.length - 2)];
        const added = insertPoint(points, (left.t + right.t) / 2);
        next = added.points;
        setFocused(added.index);
        break;
      }
      default:
        return;
    }
    ev.preventDefault();
    commit(next);
  };

  // Keep keyboard focus on the point being moved after React re-renders the list.
  useEffect(() => {
    if (focused === null) return;
    const el = svgRef.current?.querySelector<SVGCircleElement>(`[data-point="${focused}"]`);
    if (el && document.activeElement !== el && svgRef.current?.contains(document.activeElement)) el.focus();
  }, [focused, points]);

  const addPoint = () => {
    // In the middle of the widest gap.
    let best = 0;
    for (let i = 1; i < points.length - 1; i++) if (points[i + 1].t - points[i].t > points[best + 1].t - points[best].t) best = i;
    const added = insertPoint(points, (points[best].t + points[best + 1].t) / 2);
    commit(added.points);
  };

  return (
    <div className="curve-editor" data-testid={testId}>
      <svg
        ref={svgRef}
        viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
        role="group"
        aria-label={`Per-layer curve: ${label}`}
        onPointerMove={onPointerMove}
        onPointerUp={endDrag}
        onPointerCancel={endDrag}
        onDoubleClick={(ev) => {
          if ((ev.target as Element).tagName === 'circle') return;
          const at = toData(ev as unknown as PointerEvent);
          commit(insertPoint(points, at.t).points);
        }}
      >
        {y.ticks(4).filter((v) => v >= lo0 && v <= hi0).map((v) => (
          <g key={`y${v}`} className="curve-grid">
            <line x1={M.left} x2={WIDTH - M.right} y1={y(v)} y2={y(v)} />
            <text x={M.left - 4} y={y(v)} dy="0.32em" textAnchor="end">
              {tickLabel(v)}
            </text>
          </g>
        ))}
        {layerTicks.map((k) => (
          <line key={`x${k}`} className="curve-layer" x1={x(layerT(k, layers))} x2={x(layerT(k, layers))} y1={M.top} y2={HEIGHT - M.bottom} />
        ))}
        {shownLayerTicks.map((k) => (
          <text key={`xl${k}`} className="curve-axis-label" x={x(layerT(k, layers))} y={HEIGHT - M.bottom + 14} textAnchor="middle">
            {k}
          </text>
        ))}
        <text className="curve-axis-title" x={M.left - 4} y={HEIGHT - M.bottom + 14} textAnchor="end">
          layer
        </text>
        <path className="curve-line" d={path ?? undefined} />
        {layerTicks.map((k) => {
          const t = layerT(k, layers);
          return <circle key={`s${k}`} className="curve-sample" cx={x(t)} cy={y(evalCurve(points, t))} r={2.5} />;
        })}
        {points.map((p, i) => (
          <circle
            key={i}
            data-point={i}
            className={`curve-point${focused === i ? ' is-focused' : ''}`}
            cx={x(p.t)}
            cy={y(p.value)}
            r={7}
            tabIndex={0}
            role="slider"
            aria-label={`${label}: point ${i + 1} of ${points.length}, at ${atLabel(p.t, layers)}`}
            aria-valuemin={bounds.min === -Infinity ? undefined : bounds.min}
            aria-valuemax={bounds.max === Infinity ? undefined : bounds.max}
            aria-valuenow={roundValue(p.value)}
            aria-valuetext={`${roundValue(p.value)} at ${atLabel(p.t, layers)}`}
            onFocus={() => setFocused(i)}
            onBlur={() => setFocused((f) => (f === i ? null : f))}
            onKeyDown={(ev) => onKeyDown(i, ev)}
            onPointerDown={(ev) => {
              ev.preventDefault();
              (ev.target as Element).setPointerCapture?.(ev.pointerId);
              (ev.target as SVGCircleElement).focus();
              dragging.current = i;
            }}
          >
            <title>{`${roundValue(p.value)} at ${atLabel(p.t, layers)}`}</title>
          </circle>
        ))}
      </svg>
      <div className="curve-footer">
        <span className="hint">
          Drag points or use arrow keys; double-click adds a point, Delete removes one. Embeddings, the final norm and lm_head take the
          layer-0 value.{numLayers === null ? ' The layer count shows once a model is loaded.' : ''}
        </span>
        <button type="button" className="small" onClick={addPoint} data-testid={`${testId}.add-point`}>
          Add point
        </button>
      </div>
    </div>
  );
}

function roundToStep(v: number, step: number): number {
  return roundValue(Math.round(v / step) * step);
}

function tickLabel(v: number): string {
  return Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(0) : String(roundValue(v));
}

function atLabel(t: number, layers: number): string {
  const layer = t * (layers - 1);
  return Math.abs(layer - Math.round(layer)) < 1e-6 ? `layer ${Math.round(layer)}` : `layer ${layer.toFixed(1)}`;
}

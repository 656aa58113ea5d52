/**
 * A metric per layer, one line per model (d3 scales and line generator, SVG rendered by React).
 * The layer axis uses the per-layer curve editor's geometry (CurveEditor.tsx: 520 wide, plot from
 * x = 56 to 496), so a chart drawn at the editor's width lines its layers up with the editor's.
 * Hover or arrow keys pick a layer; its values show under the chart.
 */
import { line, scaleLinear } from 'd3';
import { useState, type Dispatch, type KeyboardEvent, type PointerEvent, type ReactNode, type RefObject, type SetStateAction } from 'react';
import {
  AxisBottom,
  AxisLeft,
  ChartFrame,
  DASHES,
  formatValue,
  legendHeight,
  seriesColor,
  SvgLegend,
  SvgTitle,
  TEXT,
  type LegendItem,
} from './chart-kit.tsx';
import { layerCsv, type LayerSeries } from './view-data.ts';

/** The curve editor's frame (CurveEditor.tsx WIDTH, M.left + INSET, WIDTH − M.right − INSET). */
export const LAYER_AXIS = { width: 520, x0: 56, x1: 496 } as const;

export type LayerAxis = { width: number; x0: number; x1: number };

/**
 * The frame of a chart drawn `width` CSS pixels wide (text at its natural size): the curve editor's
 * margins, a wider plot. At the editor's width it is LAYER_AXIS, so the layers line up with it.
 */
export function layerAxis(width: number): LayerAxis {
  const w = Math.max(LAYER_AXIS.width, Math.round(width));
  return { width: w, x0: LAYER_AXIS.x0, x1: w - (LAYER_AXIS.width - LAYER_AXIS.x1) };
}

export interface LayerLineChartProps {
  testId: string;
  data: LayerSeries;
  fraction: boolean;
  download(name: string, blob: Blob): void;
  controls?: ReactNode;
}

const PLOT_HEIGHT = 150;

/** x of layer k of L, as the curve editor places it (t = k / (L − 1); one layer sits at t = 0). */
export function layerX(k: number, layers: number, axis: LayerAxis = LAYER_AXIS): number {
  const t = layers > 1 ? k / (layers - 1) : 0;
  return axis.x0 + t * (axis.x1 - axis.x0);
}

export function LayerLineChart({ testId, data, fraction, download, controls }: LayerLineChartProps) {
  const [focus, setFocus] = useState<number | null>(null);
  const L = data.layers.length;
  const readout =
    focus !== null
      ? `Layer ${focus}: ${data.series.map((s) => `${s.label} ${formatValue(s.values[focus], fraction)}`).join(' · ')}`
      : 'Hover the chart, or focus it and use ← →, for the values of a layer.';
  return (
    <ChartFrame testId={testId} title={data.title} csv={() => layerCsv(data)} download={download} footer={readout} controls={controls}>
      {(ref, width) => <LineSvg data={data} fraction={fraction} svgRef={ref} axis={layerAxis(width)} focus={focus} setFocus={setFocus} />}
    </ChartFrame>
  );
}

function LineSvg({
  data,
  fraction,
  svgRef,
  axis,
  focus,
  setFocus,
}: {
  data: LayerSeries;
  fraction: boolean;
  svgRef: RefObject<SVGSVGElement | null>;
  axis: LayerAxis;
  focus: number | null;
  setFocus: Dispatch<SetStateAction<number | null>>;
}) {
  const L = data.layers.length;
  const items: LegendItem[] = data.series.map((s, i) => ({ label: s.label, color: seriesColor(s.label, i), dash: DASHES[i % DASHES.length] }));
  const legendTop = 52;
  const legendH = legendHeight(items, axis.width - 16);
  const top = legendTop + legendH + 18;
  const bottom = top + PLOT_HEIGHT;
  const height = bottom + 36;

  const values = data.series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v));
  const lo = Math.min(0, ...values);
  const hi = Math.max(fraction ? 0.01 : 1e-12, ...values);
  const y = scaleLinear().domain([lo, hi]).nice().range([bottom, top]);
  const yTicks = y.ticks(5).map((v) => ({ at: y(v), text: formatValue(v, fraction) }));
  const xStep = Math.max(1, Math.ceil(L / 12));
  const xTicks = data.layers.filter((k) => k % xStep === 0 || k === L - 1).map((k) => ({ at: layerX(k, L, axis), text: String(k) }));
  const path = line<{ k: number; v: number | null }>()
    .defined((p) => p.v !== null && Number.isFinite(p.v))
    .x((p) => layerX(p.k, L, axis))
    .y((p) => y(p.v as number));

  const pick = (ev: PointerEvent<SVGSVGElement>) => {
    const box = ev.currentTarget.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * axis.width;
    const t = (px - axis.x0) / (axis.x1 - axis.x0);
    setFocus(L > 0 ? Math.max(0, Math.min(L - 1, Math.round(t * (L - 1)))) : null);
  };
  const key = (ev: KeyboardEvent<SVGSVGElement>) => {
    if (ev.key !== 'ArrowLeft' && ev.key !== 'ArrowRight') return;
    ev.preventDefault();
    const step = ev.key === 'ArrowLeft' ? -1 : 1;
    setFocus((f) => Math.max(0, Math.min(L - 1, (f ?? (step > 0 ? -1 : L)) + step)));
  };
  return (
    <svg
      ref={svgRef}
      viewBox={`0 0 ${axis.width} ${height}`}
      width="100%"
      role="img"
      tabIndex={0}
      aria-label={`${data.title}, ${data.unit}, over ${L} layers`}
      onPointerMove={pick}
      onPointerLeave={() => setFocus(null)}
      onKeyDown={key}
      onBlur={() => setFocus(null)}
    >
      <SvgTitle title={data.title} unit={data.unit} width={axis.width} />
      <SvgLegend items={items} x={8} y={legendTop} width={axis.width - 16} />
      <AxisLeft ticks={yTicks} x={axis.x0 - 10} y0={top} y1={bottom} label={data.axis} gridTo={axis.x1 + 10} />
      <AxisBottom ticks={xTicks} y={bottom} x0={axis.x0 - 10} x1={axis.x1 + 10} label="layer" />
      {focus !== null ? <line x1={layerX(focus, L, axis)} x2={layerX(focus, L, axis)} y1={top} y2={bottom} stroke={TEXT} strokeOpacity={0.35} /> : null}
      {data.series.map((s, i) => {
        const pts = s.values.map((v, k) => ({ k, v }));
        const color = seriesColor(s.label, i);
        return (
          <g key={s.label} data-series={s.label}>
            <path d={path(pts) ?? ''} fill="none" stroke={color} strokeWidth={2} strokeDasharray={DASHES[i % DASHES.length] || undefined} />
            {pts.map((p) =>
              p.v !== null && Number.isFinite(p.v) ? (
                <circle key={p.k} cx={layerX(p.k, L, axis)} cy={y(p.v)} r={focus === p.k ? 4.5 : 2.8} fill={color} data-layer={p.k} data-value={p.v}>
                  <title>{`${s.label}, layer ${p.k}: ${formatValue(p.v, fraction)}`}</title>
                </circle>
              ) : null,
            )}
          </g>
        );
      })}
    </svg>
  );
}

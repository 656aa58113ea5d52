/**
 * Histogram of task-vector magnitudes |δ| on a log₂ axis (the analysis's fixed quarter-octave bins),
 * one small plot per model (so series never hide one another), the entries the method keeps dashed
 * over them, and each model's trim thresholds (smallest and largest kept |δ|) as dotted verticals
 * when one tensor is shown.
 */
import { area, curveStepAfter, format, line, scaleLinear, scaleLog } from 'd3';
import { useState, type Dispatch, type ReactNode, type RefObject, type SetStateAction } from 'react';
import { AxisBottom, ChartFrame, FONT, legendHeight, MUTED, seriesColor, SvgLegend, SvgTitle, TEXT, type LegendItem } from './chart-kit.tsx';
import { layerAxis, type LayerAxis } from './LayerLineChart.tsx';
import { histogramCsv, type HistogramData } from './view-data.ts';

export interface MagnitudeHistogramProps {
  testId: string;
  data: HistogramData;
  download(name: string, blob: Blob): void;
  controls?: ReactNode;
}

const UNIT = 'entries per quarter-octave bin of |δ| (log₂ axis)';

/** The bins worth drawing: from the first to the last one any series counts in, padded by an octave. */
export function visibleBins(d: HistogramData): [number, number] {
  let first = Infinity;
  let last = -Infinity;
  for (const s of d.counts) {
    s.values.forEach((v, k) => {
      if (v > 0) {
        first = Math.min(first, k);
        last = Math.max(last, k);
      }
    });
  }
  if (first === Infinity) return [0, d.bins.length - 1];
  return [Math.max(0, first - 4), Math.min(d.bins.length - 1, last + 4)];
}

const SUPERSCRIPT: Record<string, string> = { '-': '⁻', '0': '⁰', '1': '¹', '2': '²', '3': '³', '4': '⁴', '5': '⁵', '6': '⁶', '7': '⁷', '8': '⁸', '9': '⁹' };

/** 2⁻¹⁰ for e = −10. */
export function powerLabel(e: number): string {
  return `2${[...String(e)].map((c) => SUPERSCRIPT[c]).join('')}`;
}

const countFormat = format('~s');

/** Height of each model's small plot. */
const PANEL_HEIGHT = 62;
const PANEL_GAP = 10;

/**
 * One small plot per model, on one |δ| axis and one count scale, so no series hides another: all
 * entries as a filled step outline, the entries the method keeps as a dashed line over it, and that
 * model's trim thresholds as dotted verticals labelled at the plot's top (the lower one left of its
 * line, the upper one right of it, dropped a line when the two would touch).
 */
export function MagnitudeHistogram({ testId, data, download, controls }: MagnitudeHistogramProps) {
  const [hover, setHover] = useState<number | null>(null);
  const thresholds = data.thresholds
    ?.filter((t) => t.lo !== null || t.hi !== null)
    .map((t) => `${t.label} keeps ${t.lo !== null ? `|δ| ≥ ${t.lo.toExponential(3)}` : ''}${t.lo !== null && t.hi !== null ? ' and ' : ''}${t.hi !== null ? `|δ| ≤ ${t.hi.toExponential(3)}` : ''}`)
    .join(' · ');
  const readout =
    hover !== null
      ? `|δ| in [${data.bins[hover].lo.toExponential(2)}, ${data.bins[hover].hi.toExponential(2)}): ` +
        data.counts
          .map((c, i) => `${c.label} ${c.values[hover]}${data.keptCounts ? ` (kept ${data.keptCounts[i].values[hover]})` : ''}`)
          .join(' · ')
      : thresholds
        ? `Trim thresholds: ${thresholds}.`
        : data.outside.map((o) => `${o.label}: ${o.zero} zero${o.below ? `, ${o.below} below ${powerLabel(Math.log2(data.bins[0].lo))}` : ''}${o.above ? `, ${o.above} ≥ ${data.bins.at(-1)!.hi}` : ''}${o.nonFinite ? `, ${o.nonFinite} Inf/NaN` : ''}`).join(' · ');
  return (
    <ChartFrame testId={testId} title={data.title} csv={() => histogramCsv(data)} download={download} footer={readout} controls={controls}>
      {(ref, w) => <HistogramSvg data={data} svgRef={ref} axis={layerAxis(w)} hover={hover} setHover={setHover} />}
    </ChartFrame>
  );
}

function HistogramSvg({
  data,
  svgRef,
  axis,
  hover,
  setHover,
}: {
  data: HistogramData;
  svgRef: RefObject<SVGSVGElement | null>;
  axis: LayerAxis;
  hover: number | null;
  setHover: Dispatch<SetStateAction<number | null>>;
}) {
  const [first, last] = visibleBins(data);
  const width = axis.width;
  const x0 = axis.x0;
  const x1 = axis.x1;
  const x = scaleLog()
    .base(2)
    .domain([data.bins[first].lo, data.bins[last].hi])
    .range([x0, x1]);
  const items: LegendItem[] = [{ label: 'all entries', color: MUTED }];
  if (data.keptCounts) items.push({ label: 'kept by the method', color: MUTED, dash: '5 3' });
  if (data.thresholds) items.push({ label: 'trim thresholds', color: MUTED, dash: '1 3' });
  const legendTop = 52;
  const top = legendTop + legendHeight(items, width - 16) + 16;
  const panels = data.counts.length;
  const panelTop = (i: number) => top + i * (PANEL_HEIGHT + PANEL_GAP);
  const bottom = panelTop(panels - 1) + PANEL_HEIGHT;
  const height = bottom + 38;
  const max = Math.max(1, ...data.counts.flatMap((c) => c.values.slice(first, last + 1)));
  const yOf = (i: number) =>
    scaleLinear()
      .domain([0, max])
      .nice()
      .range([panelTop(i) + PANEL_HEIGHT, panelTop(i) + 14]);
  const e0 = Math.ceil(Math.log2(data.bins[first].lo));
  const e1 = Math.floor(Math.log2(data.bins[last].hi));
  const every = Math.max(1, Math.ceil((e1 - e0 + 1) / 9));
  const xTicks: { at: number; text: string }[] = [];
  for (let e = e0; e <= e1; e++) if ((e - e0) % every === 0) xTicks.push({ at: x(2 ** e), text: powerLabel(e) });

  const pointsOf = (values: readonly number[]): [number, number][] => {
    const pts: [number, number][] = [];
    for (let k = first; k <= last; k++) pts.push([data.bins[k].lo, values[k]]);
    pts.push([data.bins[last].hi, values[last]]);
    return pts;
  };

  return (
    <svg ref={svgRef} viewBox={`0 0 ${width} ${height}`} width="100%" role="img" aria-label={`${data.title}: ${UNIT}, one plot per model`}>
      <SvgTitle title={data.title} unit={UNIT} width={width} />
      <SvgLegend items={items} x={8} y={legendTop} width={width - 16} />
      {data.counts.map((c, i) => {
        const y = yOf(i);
        const color = seriesColor(c.label, i);
        const step = line<[number, number]>()
          .x((p) => x(p[0]))
          .y((p) => y(p[1]))
          .curve(curveStepAfter);
        const fill = area<[number, number]>()
          .x((p) => x(p[0]))
          .y0(y(0))
          .y1((p) => y(p[1]))
          .curve(curveStepAfter);
        const pts = pointsOf(c.values);
        const t = data.thresholds?.[i];
        const lo = t?.lo !== null && t?.lo !== undefined && t.lo > 0 && t.lo >= x.domain()[0] && t.lo <= x.domain()[1] ? t.lo : null;
        const hi = t?.hi !== null && t?.hi !== undefined && t.hi > 0 && t.hi >= x.domain()[0] && t.hi <= x.domain()[1] ? t.hi : null;
        // Labels of two close lines would touch: the upper one goes a line lower.
        const crowded = lo !== null && hi !== null && x(hi) - x(lo) < 110;
        return (
          <g key={c.label} data-series={c.label} fontFamily={FONT}>
            <line x1={x0 - 10} x2={x1 + 10} y1={y(0)} y2={y(0)} stroke={MUTED} strokeOpacity={0.5} />
            <text x={x0 - 10} y={panelTop(i) + 9} fontSize={10.5} fontWeight={600} fill={color}>
              {c.label}
            </text>
            <text x={x0 - 14} y={panelTop(i) + 17} fontSize={9} fill={MUTED} textAnchor="end">
              {countFormat(y.domain()[1])}
            </text>
            <path d={fill(pts) ?? ''} fill={color} fillOpacity={0.14} stroke="none" pointerEvents="none" />
            <path d={step(pts) ?? ''} fill="none" stroke={color} strokeWidth={1.5} pointerEvents="none" />
            {data.keptCounts ? (
              <path d={step(pointsOf(data.keptCounts[i].values)) ?? ''} fill="none" stroke={color} strokeWidth={1.6} strokeDasharray="5 3" pointerEvents="none" data-series={`${c.label} kept`} />
            ) : null}
            {[lo, hi].map((v, side) =>
              v !== null ? (
                <g key={side} fontSize={9.5} pointerEvents="none">
                  <line x1={x(v)} x2={x(v)} y1={panelTop(i) + 10} y2={y(0)} stroke={color} strokeDasharray="1 3" strokeWidth={1.6} data-threshold={v} />
                  <text x={side === 0 ? x(v) - 3 : x(v) + 3} y={panelTop(i) + (side === 1 && crowded ? 22 : 9)} textAnchor={side === 0 ? 'end' : 'start'} fill={color}>
                    {side === 0 ? '≥' : '≤'} {v.toExponential(1)}
                  </text>
                </g>
              ) : null,
            )}
          </g>
        );
      })}
      {Array.from({ length: last - first + 1 }, (_, j) => first + j).map((k) => (
        <rect
          key={k}
          x={x(data.bins[k].lo)}
          y={top}
          width={Math.max(0, x(data.bins[k].hi) - x(data.bins[k].lo))}
          height={bottom - top}
          fill={hover === k ? '#000000' : 'transparent'}
          fillOpacity={hover === k ? 0.06 : 0}
          onPointerEnter={() => setHover(k)}
          onPointerLeave={() => setHover(null)}
        />
      ))}
      <AxisBottom ticks={xTicks} y={bottom} x0={x0 - 10} x1={x1 + 10} label="|δ| (log₂ scale)" />
      <text x={x0 - 10} y={top - 4} fontFamily={FONT} fontSize={10} fill={TEXT}>
        entries per bin (same scale in every plot)
      </text>
    </svg>
  );
}

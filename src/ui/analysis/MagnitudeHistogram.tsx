/**
 * Histogram of task-vector magnitudes |δ| on a log₂ axis (the analysis's fixed quarter-octave bins),
 * one step line per model, the entries the method keeps dashed over them, and each model's trim
 * thresholds (smallest and largest kept |δ|) as dotted verticals when one tensor is shown.
 */
import { curveStepAfter, format, line, scaleLinear, scaleLog } from 'd3';
import { useState, type ReactNode } from 'react';
import {
  AxisBottom,
  AxisLeft,
  ChartFrame,
  FONT,
  legendHeight,
  MUTED,
  seriesColor,
  SvgLegend,
  SvgTitle,
  type LegendItem,
} from './chart-kit.tsx';
import { LAYER_AXIS } from './LayerLineChart.tsx';
import { histogramCsv, type HistogramData } from './view-data.ts';

export interface MagnitudeHistogramProps {
  testId: string;
  data: HistogramData;
  download(name: string, blob: Blob): void;
  controls?: ReactNode;
}

const PLOT_HEIGHT = 160;
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

export function MagnitudeHistogram({ testId, data, download, controls }: MagnitudeHistogramProps) {
  const [hover, setHover] = useState<number | null>(null);
  const [first, last] = visibleBins(data);
  const x0 = LAYER_AXIS.x0;
  const x1 = LAYER_AXIS.x1;
  const x = scaleLog()
    .base(2)
    .domain([data.bins[first].lo, data.bins[last].hi])
    .range([x0, x1]);
  const items: LegendItem[] = data.counts.map((c, i) => ({ label: c.label, color: seriesColor(c.label, i) }));
  if (data.keptCounts) items.push({ label: 'kept by the method', color: MUTED, dash: '5 3' });
  if (data.thresholds) items.push({ label: 'trim thresholds', color: MUTED, dash: '1 3' });
  const legendTop = 52;
  const top = legendTop + legendHeight(items, LAYER_AXIS.width - 16) + 18;
  const bottom = top + PLOT_HEIGHT;
  const height = bottom + 38;
  const max = Math.max(1, ...data.counts.flatMap((c) => c.values.slice(first, last + 1)));
  const y = scaleLinear().domain([0, max]).nice().range([bottom, top]);
  const yTicks = y.ticks(4).map((v) => ({ at: y(v), text: countFormat(v) }));
  const e0 = Math.ceil(Math.log2(data.bins[first].lo));
  const e1 = Math.floor(Math.log2(data.bins[last].hi));
  const every = Math.max(1, Math.ceil((e1 - e0 + 1) / 9));
  const xTicks: { at: number; text: string }[] = [];
  for (let e = e0; e <= e1; e++) if ((e - e0) % every === 0) xTicks.push({ at: x(2 ** e), text: powerLabel(e) });

  const step = line<[number, number]>()
    .x((p) => x(p[0]))
    .y((p) => y(p[1]))
    .curve(curveStepAfter);
  const pointsOf = (values: readonly number[]): [number, number][] => {
    const pts: [number, number][] = [];
    for (let k = first; k <= last; k++) pts.push([data.bins[k].lo, values[k]]);
    pts.push([data.bins[last].hi, values[last]]);
    return pts;
  };

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
      {(ref) => (
        <svg ref={ref} viewBox={`0 0 ${LAYER_AXIS.width} ${height}`} width="100%" role="img" aria-label={`${data.title}: ${UNIT}`}>
          <SvgTitle title={data.title} unit={UNIT} width={LAYER_AXIS.width} />
          <SvgLegend items={items} x={8} y={legendTop} width={LAYER_AXIS.width - 16} />
          <AxisLeft ticks={yTicks} x={x0 - 10} y0={top} y1={bottom} label="entries" gridTo={x1 + 10} />
          <AxisBottom ticks={xTicks} y={bottom} x0={x0 - 10} x1={x1 + 10} label="|δ| (log₂ scale)" />
          {Array.from({ length: last - first + 1 }, (_, j) => first + j).map((k) => (
            <rect
              key={k}
              x={x(data.bins[k].lo)}
              y={top}
              width={Math.max(0, x(data.bins[k].hi) - x(data.bins[k].lo))}
              height={PLOT_HEIGHT}
              fill={hover === k ? '#000000' : 'transparent'}
              fillOpacity={hover === k ? 0.06 : 0}
              onPointerEnter={() => setHover(k)}
              onPointerLeave={() => setHover(null)}
            />
          ))}
          {data.counts.map((c, i) => (
            <path key={`all-${c.label}`} d={step(pointsOf(c.values)) ?? ''} fill="none" stroke={seriesColor(c.label, i)} strokeWidth={1.8} pointerEvents="none" data-series={c.label} />
          ))}
          {data.keptCounts?.map((c, i) => (
            <path
              key={`kept-${c.label}`}
              d={step(pointsOf(c.values)) ?? ''}
              fill="none"
              stroke={seriesColor(c.label, i)}
              strokeWidth={1.4}
              strokeDasharray="5 3"
              pointerEvents="none"
              data-series={`${c.label} kept`}
            />
          ))}
          {data.thresholds?.map((t, i) =>
            [t.lo, t.hi].map((v, side) =>
              v !== null && v > 0 && v >= x.domain()[0] && v <= x.domain()[1] ? (
                <g key={`${t.label}-${side}`} fontFamily={FONT} fontSize={9.5} pointerEvents="none">
                  <line x1={x(v)} x2={x(v)} y1={top} y2={bottom} stroke={seriesColor(t.label, i)} strokeDasharray="1 3" strokeWidth={1.6} data-threshold={v} />
                  {/* Lower thresholds labelled left of their line, upper ones right: pairs do not collide. */}
                  <text x={side === 0 ? x(v) - 3 : x(v) + 3} y={top + 10 + 11 * i} textAnchor={side === 0 ? 'end' : 'start'} fill={seriesColor(t.label, i)}>
                    {side === 0 ? '≥' : '≤'} {v.toExponential(1)}
                  </text>
                </g>
              ) : null,
            ),
          )}
        </svg>
      )}
    </ChartFrame>
  );
}

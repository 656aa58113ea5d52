/**
 * The top singular values of one weight matrix's task vectors, one line per model, on a log scale
 * (d3 scales and line generator, SVG rendered by React). Each model's effective rank is in its
 * legend entry. Hover or ← → pick an index j; the σ_j of every model show under the chart.
 */
import { line, scaleLinear, scaleLog } from 'd3';
import { useState, type KeyboardEvent, type PointerEvent, type ReactNode } from 'react';
import { AxisBottom, AxisLeft, ChartFrame, DASHES, formatValue, legendHeight, seriesColor, SvgLegend, SvgTitle, TEXT, type LegendItem } from './chart-kit.tsx';
import { spectrumCsv, type SpectrumData } from './subspace-view-data.ts';

export interface SpectrumChartProps {
  testId: string;
  data: SpectrumData;
  download(name: string, blob: Blob): void;
  controls?: ReactNode;
}

const PLOT_HEIGHT = 170;
const X0 = 62;
const RIGHT = 24;

/** A legend label: the model and its effective rank. */
export function spectrumLegendLabel(s: SpectrumData['series'][number]): string {
  return `${s.label} (eff. rank ${s.effectiveRank === null ? '–' : s.effectiveRank.toFixed(1)})`;
}

export function SpectrumChart({ testId, data, download, controls }: SpectrumChartProps) {
  const [focus, setFocus] = useState<number | null>(null);
  const k = data.index.length;
  const readout =
    focus !== null
      ? `σ_${data.index[focus]}: ${data.series.map((s) => `${s.label} ${formatValue(s.values[focus], false)}`).join(' · ')}`
      : 'Hover the chart, or focus it and use ← →, for the singular values at one index.';
  return (
    <ChartFrame testId={testId} title={data.title} csv={() => spectrumCsv(data)} download={download} footer={readout} controls={controls}>
      {(ref, frameWidth) => {
        const width = Math.max(420, Math.round(frameWidth));
        const x1 = width - RIGHT;
        const items: LegendItem[] = data.series.map((s, i) => ({ label: spectrumLegendLabel(s), color: seriesColor(s.label, i), dash: DASHES[i % DASHES.length] }));
        const legendTop = 52;
        const top = legendTop + legendHeight(items, width - 16) + 18;
        const bottom = top + PLOT_HEIGHT;
        const height = bottom + 36;
        // Zeros (a zero task vector, directions past its rank) have no place on a log axis.
        const positive = data.series.flatMap((s) => s.values).filter((v): v is number => v !== null && Number.isFinite(v) && v > 0);
        const lo = positive.length ? Math.min(...positive) : 1e-6;
        const hi = positive.length ? Math.max(...positive) : 1;
        const y = scaleLog()
          .domain(lo === hi ? [lo / 2, hi * 2] : [lo, hi])
          .nice()
          .range([bottom, top]);
        const x = scaleLinear()
          .domain([1, Math.max(2, k)])
          .range([X0, x1]);
        const yTicks = y.ticks(5).filter((_, i, all) => all.length <= 8 || i % Math.ceil(all.length / 6) === 0);
        const xStep = Math.max(1, Math.ceil(k / 16));
        const xTicks = data.index.filter((j) => j === 1 || j % xStep === 0 || j === k).map((j) => ({ at: x(j), text: String(j) }));
        const path = line<{ j: number; v: number | null }>()
          .defined((p) => p.v !== null && Number.isFinite(p.v) && p.v > 0)
          .x((p) => x(p.j))
          .y((p) => y(p.v as number));
        const pick = (ev: PointerEvent<SVGSVGElement>) => {
          const box = ev.currentTarget.getBoundingClientRect();
          const px = ((ev.clientX - box.left) / box.width) * width;
          setFocus(k > 0 ? Math.max(0, Math.min(k - 1, Math.round(x.invert(px)) - 1)) : null);
        };
        const key = (ev: KeyboardEvent<SVGSVGElement>) => {
          if (ev.key !== 'ArrowLeft' && ev.key !== 'ArrowRight') return;
          ev.preventDefault();
          const step = ev.key === 'ArrowLeft' ? -1 : 1;
          setFocus((f) => Math.max(0, Math.min(k - 1, (f ?? (step > 0 ? -1 : k)) + step)));
        };
        return (
          <svg
            ref={ref}
            viewBox={`0 0 ${width} ${height}`}
            width="100%"
            role="img"
            tabIndex={0}
            aria-label={`${data.title}, ${data.unit}`}
            onPointerMove={pick}
            onPointerLeave={() => setFocus(null)}
            onKeyDown={key}
            onBlur={() => setFocus(null)}
          >
            <SvgTitle title={data.title} unit={data.unit} width={width} />
            <SvgLegend items={items} x={8} y={legendTop} width={width - 16} />
            <AxisLeft ticks={yTicks.map((v) => ({ at: y(v), text: formatValue(v, false) }))} x={X0 - 10} y0={top} y1={bottom} label="σ_j" gridTo={x1 + 10} />
            <AxisBottom ticks={xTicks} y={bottom} x0={X0 - 10} x1={x1 + 10} label="j (singular value index, largest first)" />
            {focus !== null ? <line x1={x(focus + 1)} x2={x(focus + 1)} y1={top} y2={bottom} stroke={TEXT} strokeOpacity={0.35} /> : null}
            {data.series.map((s, i) => {
              const pts = s.values.map((v, idx) => ({ j: idx + 1, v }));
              const color = seriesColor(s.label, i);
              return (
                <g key={s.label} data-series={s.label}>
                  <path d={path(pts) ?? ''} fill="none" stroke={color} strokeWidth={2} strokeDasharray={DASHES[i % DASHES.length] || undefined} />
                  {pts.map((p) =>
                    p.v !== null && Number.isFinite(p.v) && p.v > 0 ? (
                      <circle key={p.j} cx={x(p.j)} cy={y(p.v)} r={focus === p.j - 1 ? 4.5 : 2.6} fill={color} data-index={p.j} data-value={p.v}>
                        <title>{`${s.label}, σ_${p.j}: ${formatValue(p.v, false)}`}</title>
                      </circle>
                    ) : null,
                  )}
                </g>
              );
            })}
          </svg>
        );
      }}
    </ChartFrame>
  );
}

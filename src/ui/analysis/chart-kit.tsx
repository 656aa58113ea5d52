/**
 * Shared pieces of the analysis charts: the frame (title, units, export buttons, hover readout),
 * colours, legends and axes. Charts are pure renders of data + d3 scales into SVG; everything the
 * exported SVG/PNG needs (title, legend, colours, fonts) is drawn inside the SVG as attributes.
 */
import { useCallback, useRef, useState, type ReactNode, type RefObject } from 'react';
import { csvBlob, pngBlob, svgBlob } from './export.ts';
import { slug } from './view-data.ts';

/** Okabe–Ito: a categorical palette that stays distinct under the common colour-vision deficiencies. */
export const MODEL_COLORS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000'];
/** The "all models" series. */
export const ALL_COLOR = '#555555';
export const FONT = "Inter, 'Segoe UI', system-ui, sans-serif";
export const TEXT = '#1d2330';
export const MUTED = '#5f6878';
export const GRID = '#e1e4ea';

export function seriesColor(label: string, index: number): string {
  return label === 'all models' ? ALL_COLOR : MODEL_COLORS[index % MODEL_COLORS.length];
}

/** Dash patterns that tell series apart without colour (8 models, then they repeat). */
export const DASHES = ['', '6 3', '2 2', '8 3 2 3', '1 3', '10 4', '4 4 1 4', '3 6'];

export interface ChartFrameProps {
  testId: string;
  /** Also drawn inside the SVG. */
  title: string;
  csv: () => string;
  download(name: string, blob: Blob): void;
  /** The chart: an <svg> that takes `svgRef`; `width` is the frame's width in CSS pixels (DEFAULT_CHART_WIDTH until measured). */
  children: (svgRef: RefObject<SVGSVGElement | null>, width: number) => ReactNode;
  /** Text under the chart (hover readout, notes). */
  footer?: ReactNode;
  controls?: ReactNode;
}

/** A chart with its controls and its export buttons (SVG, PNG, CSV). */
export function ChartFrame({ testId, title, csv, download, children, footer, controls }: ChartFrameProps) {
  const svgRef = useRef<SVGSVGElement | null>(null);
  const [frame, width] = useWidth();
  const [error, setError] = useState<string | null>(null);
  const name = slug(title);
  const run = async (make: () => Blob | Promise<Blob>, ext: string) => {
    setError(null);
    try {
      download(`${name}.${ext}`, await make());
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <figure className="chart" data-testid={testId} ref={frame}>
      {controls ? <div className="chart-controls">{controls}</div> : null}
      {children(svgRef, width)}
      <figcaption className="chart-foot">
        <span className="chart-readout" aria-live="polite">
          {footer}
        </span>
        <span className="chart-export">
          <button type="button" className="small" data-testid={`${testId}.export.svg`} onClick={() => svgRef.current && void run(() => svgBlob(svgRef.current!), 'svg')}>
            SVG
          </button>
          <button type="button" className="small" data-testid={`${testId}.export.png`} onClick={() => svgRef.current && void run(() => pngBlob(svgRef.current!), 'png')}>
            PNG
          </button>
          <button type="button" className="small" data-testid={`${testId}.export.csv`} onClick={() => void run(() => csvBlob(csv()), 'csv')}>
            CSV
          </button>
        </span>
        {error ? (
          <span className="error-text" role="alert">
            Export failed: {error}
          </span>
        ) : null}
      </figcaption>
    </figure>
  );
}

/** The width charts are drawn at before (or without) a measurement, e.g. in a static render. */
export const DEFAULT_CHART_WIDTH = 520;

/** A ref for an element and its width in CSS pixels, followed as it resizes (rounded to 8 px to spare re-renders). */
export function useWidth(): [(el: HTMLElement | null) => void, number] {
  const [width, setWidth] = useState(DEFAULT_CHART_WIDTH);
  const observer = useRef<ResizeObserver | null>(null);
  const ref = useCallback((el: HTMLElement | null) => {
    observer.current?.disconnect();
    observer.current = null;
    if (!el || typeof ResizeObserver === 'undefined') return;
    observer.current = new ResizeObserver(([entry]) => {
      const w = Math.round(entry.contentRect.width / 8) * 8;
      if (w > 0) setWidth(w);
    });
    observer.current.observe(el);
  }, []);
  return [ref, width];
}

/** `text` cut to about `chars` characters with an ellipsis (SVG text does not wrap). */
export function fit(text: string, chars: number): string {
  return text.length <= chars ? text : `${text.slice(0, Math.max(1, chars - 1))}…`;
}

/** The chart title and its unit line, at the top of an SVG (cut to the width; whole on hover). */
export function SvgTitle({ title, unit, width }: { title: string; unit: string; width: number }) {
  return (
    <g fontFamily={FONT}>
      <text x={8} y={16} fontSize={13} fontWeight={600} fill={TEXT}>
        <title>{title}</title>
        {fit(title, Math.floor((width - 16) / 7.4))}
      </text>
      <text x={8} y={31} fontSize={10.5} fill={MUTED}>
        <title>{unit}</title>
        {fit(unit, Math.floor((width - 16) / 5.6))}
      </text>
      <line x1={0} x2={width} y1={38} y2={38} stroke={GRID} />
    </g>
  );
}

export interface LegendItem {
  label: string;
  color: string;
  dash?: string;
}

/** A one-line legend of line samples, wrapping onto more lines when wide. Returns its height. */
export function SvgLegend({ items, x, y, width }: { items: readonly LegendItem[]; x: number; y: number; width: number }) {
  const placed = legendLayout(items, width);
  return (
    <g fontFamily={FONT} fontSize={10.5} fill={TEXT}>
      {items.map((item, k) => {
        const p = placed[k];
        return (
          <g key={item.label} transform={`translate(${x + p.x},${y + p.y})`}>
            <line x1={0} x2={18} y1={0} y2={0} stroke={item.color} strokeWidth={2.5} strokeDasharray={item.dash || undefined} />
            <text x={22} y={3.5}>
              {item.label}
            </text>
          </g>
        );
      })}
    </g>
  );
}

const LEGEND_ROW = 15;

function legendLayout(items: readonly LegendItem[], width: number): { x: number; y: number }[] {
  let x = 0;
  let y = 0;
  return items.map((item) => {
    const w = 30 + item.label.length * 6;
    if (x > 0 && x + w > width) {
      x = 0;
      y += LEGEND_ROW;
    }
    const at = { x, y };
    x += w + 8;
    return at;
  });
}

export function legendHeight(items: readonly LegendItem[], width: number): number {
  if (items.length === 0) return 0;
  const rows = legendLayout(items, width).reduce((m, p) => Math.max(m, p.y), 0) / LEGEND_ROW + 1;
  return rows * LEGEND_ROW;
}

/** Tick marks and labels along the bottom of a plot. */
export function AxisBottom({
  ticks,
  y,
  label,
  x0,
  x1,
}: {
  ticks: readonly { at: number; text: string }[];
  y: number;
  label: string;
  x0: number;
  x1: number;
}) {
  return (
    <g fontFamily={FONT} fontSize={10} fill={MUTED}>
      <line x1={x0} x2={x1} y1={y} y2={y} stroke={MUTED} />
      {ticks.map((t) => (
        <g key={`${t.at}-${t.text}`} transform={`translate(${t.at},${y})`}>
          <line y2={4} stroke={MUTED} />
          <text y={15} textAnchor="middle">
            {t.text}
          </text>
        </g>
      ))}
      <text x={(x0 + x1) / 2} y={y + 29} textAnchor="middle" fill={TEXT}>
        {label}
      </text>
    </g>
  );
}

/** Tick marks, labels and grid lines along the left of a plot; the axis label sits above it. */
export function AxisLeft({
  ticks,
  x,
  label,
  y0,
  y1,
  gridTo,
}: {
  ticks: readonly { at: number; text: string }[];
  x: number;
  label: string;
  y0: number;
  y1: number;
  gridTo?: number;
}) {
  return (
    <g fontFamily={FONT} fontSize={10} fill={MUTED}>
      <line x1={x} x2={x} y1={y0} y2={y1} stroke={MUTED} />
      {ticks.map((t) => (
        <g key={`${t.at}-${t.text}`} transform={`translate(${x},${t.at})`}>
          {gridTo !== undefined ? <line x2={gridTo - x} stroke={GRID} /> : null}
          <line x2={-4} stroke={MUTED} />
          <text x={-6} y={3.5} textAnchor="end">
            {t.text}
          </text>
        </g>
      ))}
      <text x={x} y={Math.min(y0, y1) - 8} textAnchor="middle" fill={TEXT}>
        {label}
      </text>
    </g>
  );
}

/** Text colour that reads on a cell of colour `fill` (#rrggbb or rgb()). */
export function textOn(fill: string): string {
  const rgb = parseColor(fill);
  if (!rgb) return TEXT;
  const [r, g, b] = rgb.map((v) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return luminance > 0.4 ? '#111111' : '#ffffff';
}

function parseColor(c: string): [number, number, number] | null {
  const hex = /^#([0-9a-f]{6})$/i.exec(c);
  if (hex) {
    const v = parseInt(hex[1], 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }
  const rgb = /^rgb\((\d+),\s*(\d+),\s*(\d+)\)$/.exec(c);
  return rgb ? [Number(rgb[1]), Number(rgb[2]), Number(rgb[3])] : null;
}

/** A number for labels and tooltips: 3 significant digits, percentages for fractions. */
export function formatValue(v: number | null, fraction: boolean): string {
  if (v === null || !Number.isFinite(v)) return '–';
  if (fraction) return `${(100 * v).toPrecision(3)}%`;
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4)) return v.toExponential(2);
  return v.toPrecision(3);
}

/**
 * A matrix as coloured cells (models × models cosines, models × layers metrics): d3 colour scales,
 * SVG rendered by React. Values are written in the cells when they fit and shown on hover or focus;
 * the colour ramp under the grid is the legend. Signed data (cosines) uses a diverging red–blue
 * scale centred on 0, magnitudes a sequential viridis scale: both stay readable with the common
 * colour-vision deficiencies.
 */
import { interpolateRdBu, interpolateViridis, scaleDiverging, scaleSequential } from 'd3';
import { useId, useState, type Dispatch, type KeyboardEvent, type ReactNode, type RefObject, type SetStateAction } from 'react';
import { ChartFrame, FONT, formatValue, GRID, MUTED, SvgTitle, TEXT, textOn } from './chart-kit.tsx';
import { matrixCsv, type MatrixData } from './view-data.ts';

export interface HeatmapProps {
  testId: string;
  data: MatrixData;
  /** diverging: values in [−1, 1] around 0; sequential: 0 to the largest value. */
  scale: 'diverging' | 'sequential';
  /** Show values as percentages. */
  fraction?: boolean;
  rowTitle: string;
  columnTitle: string;
  download(name: string, blob: Blob): void;
  controls?: ReactNode;
}

const TOP = 46;
const RAMP_HEIGHT = 10;

/** Colour of a value (null: no value). Exported for tests of the scale's direction. */
export function heatmapColor(scale: HeatmapProps['scale'], max: number): (v: number | null) => string {
  if (scale === 'diverging') {
    // RdBu runs red → blue over [0, 1]; -1 maps to red, +1 to blue.
    const s = scaleDiverging(interpolateRdBu).domain([-1, 0, 1]).clamp(true);
    return (v) => (v === null || !Number.isFinite(v) ? '#dddddd' : (s(v) as string));
  }
  const s = scaleSequential(interpolateViridis).domain([0, max > 0 ? max : 1]).clamp(true);
  return (v) => (v === null || !Number.isFinite(v) ? '#dddddd' : (s(v) as string));
}

export function Heatmap(props: HeatmapProps) {
  const { testId, data, download, controls } = props;
  const [hover, setHover] = useState<{ i: number; j: number } | null>(null);
  const cols = data.columnLabels.length;
  const readout = hover
    ? `${cellName(data, props, hover.i, hover.j)}: ${formatValue(data.values[hover.i * cols + hover.j], props.fraction ?? false)}`
    : `Hover a cell, or focus the chart and use the arrow keys, for its value. Rows: ${props.rowTitle}; columns: ${props.columnTitle}.`;
  return (
    <ChartFrame testId={testId} title={data.title} csv={() => matrixCsv(data)} download={download} footer={readout} controls={controls}>
      {(ref, width) => <HeatmapSvg {...props} svgRef={ref} width={width} hover={hover} setHover={setHover} />}
    </ChartFrame>
  );
}

/** A cell in words: "expert-1 × expert-2" when rows and columns are the same kind, else "expert-1, layer 2". */
function cellName(data: MatrixData, p: Pick<HeatmapProps, 'rowTitle' | 'columnTitle'>, i: number, j: number): string {
  return p.rowTitle === p.columnTitle ? `${data.rowLabels[i]} × ${data.columnLabels[j]}` : `${data.rowLabels[i]}, ${p.columnTitle} ${data.columnLabels[j]}`;
}

function HeatmapSvg({
  data,
  scale,
  fraction = false,
  rowTitle,
  columnTitle,
  svgRef,
  width,
  hover,
  setHover,
}: HeatmapProps & {
  svgRef: RefObject<SVGSVGElement | null>;
  width: number;
  hover: { i: number; j: number } | null;
  setHover: Dispatch<SetStateAction<{ i: number; j: number } | null>>;
}) {
  const gradientId = useId().replace(/:/g, '');
  const WIDTH = Math.max(320, width);
  const rows = data.rowLabels.length;
  const cols = data.columnLabels.length;
  // One tab stop for the whole grid; arrow keys move between cells (a roving cursor).
  const onKey = (ev: KeyboardEvent<SVGSVGElement>) => {
    const moves: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const move = moves[ev.key];
    if (!move || rows === 0 || cols === 0) return;
    ev.preventDefault();
    setHover((h) => {
      const at = h ?? { i: 0, j: 0 };
      if (!h) return at;
      return { i: Math.max(0, Math.min(rows - 1, at.i + move[0])), j: Math.max(0, Math.min(cols - 1, at.j + move[1])) };
    });
  };
  const finite = data.values.filter((v): v is number => v !== null && Number.isFinite(v));
  const max = finite.length ? Math.max(...finite) : 1;
  const color = heatmapColor(scale, max);

  const left = Math.min(190, 16 + Math.max(4, ...data.rowLabels.map((l) => l.length)) * 6.2);
  // Cells as large as the width allows (up to 72 px), so values are written in them at any page width.
  const cell = Math.max(8, Math.min(72, (WIDTH - left - 14) / Math.max(1, cols)));
  const cellH = Math.min(cell, 34);
  const gridW = cell * cols;
  const gridH = cellH * rows;
  const labelEvery = Math.max(1, Math.ceil(14 / cell));
  const height = TOP + gridH + 34 + RAMP_HEIGHT + 26;
  const showValues = cell >= 34 && cellH >= 18;
  const rampY = TOP + gridH + 36;
  const rampX0 = left;
  const rampX1 = left + Math.min(gridW, 240);
  const rampDomain = scale === 'diverging' ? [-1, 1] : [0, max];
  const stops = Array.from({ length: 11 }, (_, k) => k / 10);

  return (
    <svg
      ref={svgRef}
      viewBox={`0 0 ${WIDTH} ${height}`}
      width="100%"
      role="img"
      tabIndex={0}
      aria-label={`${data.title}. ${data.unit}. Arrow keys move between cells.`}
      onKeyDown={onKey}
      onFocus={() => setHover((h) => h ?? { i: 0, j: 0 })}
      onBlur={() => setHover(null)}
    >
      <SvgTitle title={data.title} unit={data.unit} width={WIDTH} />
      <defs>
        <linearGradient id={gradientId}>
          {stops.map((t) => (
            <stop key={t} offset={`${t * 100}%`} stopColor={color(rampDomain[0] + t * (rampDomain[1] - rampDomain[0]))} />
          ))}
        </linearGradient>
      </defs>
      <g fontFamily={FONT} fontSize={10.5}>
        {data.rowLabels.map((label, i) => (
          <text key={`r${i}`} x={left - 6} y={TOP + i * cellH + cellH / 2 + 3.5} textAnchor="end" fill={TEXT}>
            {label}
          </text>
        ))}
        {data.columnLabels.map((label, j) =>
          j % labelEvery === 0 || j === cols - 1 ? (
            <text key={`c${j}`} x={left + j * cell + cell / 2} y={TOP + gridH + 13} textAnchor="middle" fill={MUTED} fontSize={10}>
              {label}
            </text>
          ) : null,
        )}
        <text x={left + gridW / 2} y={TOP + gridH + 26} textAnchor="middle" fill={TEXT}>
          {columnTitle}
        </text>
        {data.values.map((v, k) => {
          const i = Math.floor(k / cols);
          const j = k % cols;
          const fill = color(v);
          const text = formatValue(v, fraction);
          const on = hover?.i === i && hover?.j === j;
          return (
            <g key={k}>
              <rect
                x={left + j * cell}
                y={TOP + i * cellH}
                width={cell}
                height={cellH}
                fill={fill}
                stroke={on ? TEXT : '#ffffff'}
                strokeWidth={on ? 2 : 0.5}
                data-value={v ?? ''}
                onPointerEnter={() => setHover({ i, j })}
                onPointerLeave={() => setHover(null)}
              >
                <title>{`${cellName(data, { rowTitle, columnTitle }, i, j)}: ${text}`}</title>
              </rect>
              {showValues ? (
                <text x={left + j * cell + cell / 2} y={TOP + i * cellH + cellH / 2 + 3.5} textAnchor="middle" fill={textOn(fill)} fontSize={10} pointerEvents="none">
                  {text}
                </text>
              ) : null}
            </g>
          );
        })}
        <rect x={rampX0} y={rampY} width={rampX1 - rampX0} height={RAMP_HEIGHT} fill={`url(#${gradientId})`} stroke={GRID} />
        <text x={rampX0} y={rampY + RAMP_HEIGHT + 12} fill={MUTED} fontSize={10}>
          {formatValue(rampDomain[0], fraction)}
        </text>
        {scale === 'diverging' ? (
          <text x={(rampX0 + rampX1) / 2} y={rampY + RAMP_HEIGHT + 12} fill={MUTED} fontSize={10} textAnchor="middle">
            0
          </text>
        ) : null}
        <text x={rampX1} y={rampY + RAMP_HEIGHT + 12} fill={MUTED} fontSize={10} textAnchor="end">
          {formatValue(rampDomain[1], fraction)}
        </text>
      </g>
    </svg>
  );
}

// A dependency-free SVG chart: bars or lines over labelled points, with a
// y axis, a legend and a table-like <title> per point for screen readers
// and hover. Enough for usage over time; keeps the bundle small.
import { useEffect, useRef, useState } from "react";
import { fmtCompact } from "../logic";

export interface ChartSeries {
  name: string;
  values: number[];
  color: string; // a CSS variable name like "--c1"
}

export function Chart(props: { labels: string[]; series: ChartSeries[]; kind?: "bar" | "line";
                               title: string; height?: number; shortLabel?: (l: string) => string }) {
  // Drawn at the width it gets, so text stays at its size on any screen.
  const ref = useRef<HTMLElement>(null);
  const [W, setW] = useState(640);
  useEffect(() => {
    const el = ref.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const ro = new ResizeObserver(() => setW(Math.max(240, Math.round(el.clientWidth))));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const H = props.height ?? 200, padL = 44, padR = 8, padT = 10, padB = 26;
  const n = props.labels.length;
  const max = Math.max(1, ...props.series.flatMap((s) => s.values));
  const niceMax = niceCeil(max);
  const x = (i: number) => padL + ((W - padL - padR) * (i + 0.5)) / Math.max(1, n);
  const y = (v: number) => padT + (H - padT - padB) * (1 - v / niceMax);
  const bw = Math.max(1, ((W - padL - padR) / Math.max(1, n)) * 0.8 / props.series.length);
  const ticks = [0, niceMax / 2, niceMax];
  const every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(W / 70))));
  const short = props.shortLabel ?? ((l: string) => l);
  return (
    <figure className="chart" ref={ref}>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={props.title}>
        {ticks.map((tv) => (
          <g key={tv}>
            <line x1={padL} x2={W - padR} y1={y(tv)} y2={y(tv)} className="grid" />
            <text x={padL - 4} y={y(tv) + 4} textAnchor="end" className="axis">{fmtCompact(tv)}</text>
          </g>
        ))}
        {props.labels.map((l, i) => i % every === 0 && (
          <text key={l} x={x(i)} y={H - 8} textAnchor="middle" className="axis">{short(l)}</text>
        ))}
        {props.series.map((s, si) => props.kind === "line" ? (
          <polyline key={s.name} fill="none" strokeWidth={2} style={{ stroke: `var(${s.color})` }}
                    points={s.values.map((v, i) => `${x(i)},${y(v)}`).join(" ")} />
        ) : s.values.map((v, i) => (
          <rect key={`${s.name}-${i}`} x={x(i) - (bw * props.series.length) / 2 + si * bw} y={y(v)}
                width={bw} height={Math.max(0, y(0) - y(v))} style={{ fill: `var(${s.color})` }}>
            <title>{`${props.labels[i]} · ${s.name}: ${v}`}</title>
          </rect>
        )))}
      </svg>
      <figcaption className="legend">
        {props.series.map((s) => (
          <span key={s.name}><i style={{ background: `var(${s.color})` }} />{s.name}</span>
        ))}
      </figcaption>
    </figure>
  );
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

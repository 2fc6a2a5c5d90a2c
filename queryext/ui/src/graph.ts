// The graph of a range query, drawn with uPlot. The legend under the graph names each series by
// its labels and shows its value at the cursor.

import uPlot from 'uplot';
import { formatLabels, MatrixSeries } from './api';

// Ten colors that stay apart on white (Tableau 10), repeated.
const palette = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
const colorOf = (i: number) => palette[i % palette.length];

export interface GraphInput {
  series: MatrixSeries[];
  start: number; // seconds
  end: number;
  step: number;
  stacked: boolean;
}

// drawGraph replaces parent's content with a graph of the series and returns the uPlot instance
// (nil when there is nothing to draw) and a note about what was left out.
export function drawGraph(parent: HTMLElement, g: GraphInput): { plot: uPlot | null; note: string } {
  parent.replaceChildren();
  if (g.series.length === 0) {
    const empty = document.createElement('div');
    empty.className = 'empty';
    empty.textContent = 'Empty query result';
    parent.append(empty);
    return { plot: null, note: '' };
  }
  const n = Math.floor((g.end - g.start) / g.step + 1e-9) + 1;
  const xs: number[] = new Array(n);
  for (let i = 0; i < n; i++) xs[i] = g.start + i * g.step;
  const index = (t: number) => Math.round((t - g.start) / g.step);

  let histograms = 0;
  const raw: (number | null)[][] = g.series.map((s) => {
    const ys: (number | null)[] = new Array(n).fill(null);
    for (const [t, v] of s.values ?? []) {
      const i = index(t);
      if (i >= 0 && i < n) ys[i] = parseFloat(v);
    }
    if (s.histograms?.length) histograms++;
    return ys;
  });

  // Stacked: each series is drawn on top of the sum of those before it; the legend still shows
  // the series' own value.
  let drawn = raw;
  if (g.stacked) {
    const acc = new Array(n).fill(0);
    drawn = raw.map((ys) =>
      ys.map((v, i) => {
        if (v === null || !isFinite(v)) return null;
        acc[i] += v;
        return acc[i];
      }),
    );
  }

  const width = Math.max(parent.clientWidth, 300);
  const opts: uPlot.Options = {
    width,
    height: 360,
    cursor: { focus: { prox: 16 } },
    focus: { alpha: 0.3 },
    scales: { x: { time: true } },
    legend: { live: true },
    series: [
      { label: 'time', value: (_u, v) => (v == null ? '' : new Date(v * 1000).toISOString().replace('T', ' ').replace('.000Z', 'Z')) },
      ...g.series.map((s, i): uPlot.Series => ({
        label: formatLabels(s.metric),
        stroke: colorOf(i),
        fill: g.stacked ? colorOf(i) + '80' : undefined,
        width: 1.5,
        spanGaps: false,
        points: { show: n <= 60 },
        value: (_u, _v, si, idx) => {
          const v = idx == null ? null : raw[si - 1][idx];
          return v == null ? '' : String(v);
        },
      })),
    ],
    axes: [{}, { size: 70 }],
  };
  // Stacked: each series fills the band between itself and the one below (as uPlot's stacking
  // example and Prometheus's UI do), so the fills do not cover each other.
  if (g.stacked) opts.bands = g.series.slice(1).map((_, i): uPlot.Band => ({ series: [i + 2, i + 1] }));
  const plot = new uPlot(opts, [xs, ...drawn] as uPlot.AlignedData, parent);
  const note = histograms > 0 ? `${histograms} series of native histograms are not graphed; see them in the Table tab.` : '';
  return { plot, note };
}

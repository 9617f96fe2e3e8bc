/**
 * Small SVG chart builders for the HTML report: line charts with spread bands, scatter plots with Pareto
 * fronts and reference points, grouped bar charts. Output is a self-contained `<svg>` string (no scripts,
 * no external resources). Every data mark carries `class="mark"` so the report can be checked by counting.
 */

export const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#59a14f',
  '#e15759',
  '#76b7b2',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#7f7f7f',
];

export function esc(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** A number for SVG coordinates (2 decimals, no exponent). */
function n(v: number): string {
  return (Math.round(v * 100) / 100).toString();
}

export interface Scale {
  (v: number): number;
  domain: [number, number];
  ticks: number[];
}

/** "Nice" tick values covering [min, max] (about `count` of them). */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (min === max) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1;
    min -= pad;
    max += pad;
  }
  const span = max - min;
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag;
  const start = Math.floor(min / step + 1e-9) * step;
  const ticks: number[] = [Number(start.toPrecision(12))];
  // up to the first tick at or above max, so the domain covers every value
  for (let i = 1; ticks.length < 2 || ticks[ticks.length - 1] < max - step * 1e-9; i++) {
    ticks.push(Number((start + i * step).toPrecision(12)));
  }
  return ticks;
}

export function linearScale(
  values: number[],
  range: [number, number],
  opts: { includeZero?: boolean; count?: number } = {},
): Scale {
  const finite = values.filter((v) => Number.isFinite(v));
  let min = finite.length ? Math.min(...finite) : 0;
  let max = finite.length ? Math.max(...finite) : 1;
  if (opts.includeZero) {
    min = Math.min(0, min);
    max = Math.max(0, max);
  }
  const ticks = niceTicks(min, max, opts.count ?? 5);
  const lo = ticks[0];
  const hi = ticks[ticks.length - 1];
  const f = ((v: number) => range[0] + ((v - lo) / (hi - lo || 1)) * (range[1] - range[0])) as Scale;
  f.domain = [lo, hi];
  f.ticks = ticks;
  return f;
}

export function formatTick(v: number): string {
  const a = Math.abs(v);
  if (a === 0) return '0';
  if (a >= 1e6 || a < 1e-3) return v.toExponential(1);
  return Number(v.toPrecision(4)).toString();
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

const FRAME: Frame = { width: 560, height: 320, left: 64, right: 16, top: 34, bottom: 46 };

function axes(
  fr: Frame,
  x: Scale,
  y: Scale,
  xLabel: string,
  yLabel: string,
  xFormat = formatTick,
  yFormat = formatTick,
): string {
  const x0 = fr.left;
  const x1 = fr.width - fr.right;
  const y0 = fr.height - fr.bottom;
  const y1 = fr.top;
  const parts: string[] = [];
  for (const t of y.ticks) {
    const py = y(t);
    parts.push(`<line class="grid" x1="${n(x0)}" y1="${n(py)}" x2="${n(x1)}" y2="${n(py)}"/>`);
    parts.push(`<text class="tick" x="${n(x0 - 6)}" y="${n(py + 4)}" text-anchor="end">${esc(yFormat(t))}</text>`);
  }
  for (const t of x.ticks) {
    const px = x(t);
    parts.push(`<line class="grid" x1="${n(px)}" y1="${n(y0)}" x2="${n(px)}" y2="${n(y1)}"/>`);
    parts.push(`<text class="tick" x="${n(px)}" y="${n(y0 + 16)}" text-anchor="middle">${esc(xFormat(t))}</text>`);
  }
  parts.push(`<line class="axis" x1="${n(x0)}" y1="${n(y0)}" x2="${n(x1)}" y2="${n(y0)}"/>`);
  parts.push(`<line class="axis" x1="${n(x0)}" y1="${n(y0)}" x2="${n(x0)}" y2="${n(y1)}"/>`);
  parts.push(
    `<text class="label" x="${n((x0 + x1) / 2)}" y="${n(fr.height - 8)}" text-anchor="middle">${esc(xLabel)}</text>`,
  );
  parts.push(
    `<text class="label" transform="translate(14 ${n((y0 + y1) / 2)}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  );
  return parts.join('');
}

function legend(
  fr: Frame,
  items: { name: string; color: string; shape?: 'line' | 'dot' | 'diamond' | 'rect' }[],
): string {
  const parts: string[] = [];
  let x = fr.left;
  let y = 14;
  for (const it of items) {
    const w = 22 + it.name.length * 6.6;
    if (x + w > fr.width - fr.right && x > fr.left) {
      x = fr.left;
      y += 14;
    }
    const sym =
      it.shape === 'dot'
        ? `<circle cx="${n(x + 6)}" cy="${n(y - 4)}" r="4" fill="${it.color}"/>`
        : it.shape === 'diamond'
          ? `<path d="M${n(x + 6)} ${n(y - 9)} l5 5 l-5 5 l-5 -5 z" fill="${it.color}"/>`
          : it.shape === 'rect'
            ? `<rect x="${n(x)}" y="${n(y - 9)}" width="12" height="10" fill="${it.color}"/>`
            : `<line x1="${n(x)}" y1="${n(y - 4)}" x2="${n(x + 14)}" y2="${n(y - 4)}" stroke="${it.color}" stroke-width="2.5"/>`;
    parts.push(
      `<g class="legend-item">${sym}<text class="legend" x="${n(x + 18)}" y="${n(y)}">${esc(it.name)}</text></g>`,
    );
    x += w;
  }
  return parts.join('');
}

function open(id: string, title: string, fr: Frame, extraTop = 0): string {
  return (
    `<svg class="chart" data-chart="${esc(id)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${fr.width} ${fr.height + extraTop}" ` +
    `width="${fr.width}" height="${fr.height + extraTop}" role="img" aria-label="${esc(title)}"><title>${esc(title)}</title>`
  );
}

// ---------------------------------------------------------------------------------------------------------

export interface BandPoint {
  x: number;
  y: number;
  /** Lower and upper edge of the spread band (min-max or +-std). */
  lo?: number;
  hi?: number;
}

export interface LineSeries {
  name: string;
  color: string;
  points: BandPoint[];
}

export interface LineChartSpec {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  yFormat?: (v: number) => string;
}

/** Lines with translucent spread bands. */
export function lineChart(spec: LineChartSpec): string {
  const fr = {
    ...FRAME,
    top:
      FRAME.top +
      legendRows(
        spec.series.map((s) => s.name),
        FRAME,
      ) *
        14,
  };
  const xs = spec.series.flatMap((s) => s.points.map((p) => p.x));
  const ys = spec.series.flatMap((s) => s.points.flatMap((p) => [p.y, p.lo ?? p.y, p.hi ?? p.y]));
  const x = linearScale(xs, [fr.left, fr.width - fr.right]);
  const y = linearScale(ys, [fr.height - fr.bottom, fr.top]);
  const parts = [open(spec.id, spec.title, fr), axes(fr, x, y, spec.xLabel, spec.yLabel, formatTick, spec.yFormat)];
  for (const s of spec.series) {
    const pts = s.points.filter((p) => Number.isFinite(p.y));
    if (pts.length === 0) continue;
    parts.push(`<g class="series" data-series="${esc(s.name)}">`);
    const banded = pts.filter((p) => p.lo !== undefined && p.hi !== undefined);
    if (banded.length >= 2) {
      const upper = banded.map((p) => `${n(x(p.x))} ${n(y(p.hi as number))}`);
      const lower = banded
        .slice()
        .reverse()
        .map((p) => `${n(x(p.x))} ${n(y(p.lo as number))}`);
      parts.push(
        `<path class="mark band" d="M${upper.join(' L')} L${lower.join(' L')} Z" fill="${s.color}" fill-opacity="0.18" stroke="none"/>`,
      );
    }
    if (pts.length === 1) {
      const p = pts[0];
      parts.push(`<circle class="mark point" cx="${n(x(p.x))}" cy="${n(y(p.y))}" r="3.5" fill="${s.color}"/>`);
    } else {
      parts.push(
        `<path class="mark line" d="M${pts.map((p) => `${n(x(p.x))} ${n(y(p.y))}`).join(' L')}" fill="none" stroke="${s.color}" stroke-width="2"/>`,
      );
    }
    parts.push('</g>');
  }
  parts.push(
    legend(
      fr,
      spec.series.map((s) => ({ name: s.name, color: s.color })),
    ),
  );
  parts.push('</svg>');
  return parts.join('');
}

function legendRows(names: string[], fr: Frame): number {
  let rows = 1;
  let x = fr.left;
  for (const name of names) {
    const w = 22 + name.length * 6.6;
    if (x + w > fr.width - fr.right && x > fr.left) {
      rows++;
      x = fr.left;
    }
    x += w;
  }
  return rows - 1;
}

// ---------------------------------------------------------------------------------------------------------

export interface ScatterPoint {
  x: number;
  y: number;
  /** Hollow marker when false. */
  filled?: boolean;
  title?: string;
}

export interface ScatterSeries {
  name: string;
  color: string;
  points: ScatterPoint[];
  /** Pareto front, drawn as a step line with emphasised markers (sorted by x). */
  front?: ScatterPoint[];
}

export interface ScatterChartSpec {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: ScatterSeries[];
  /** Reference points (e.g. uniform precision), drawn as labelled black diamonds. */
  refs?: { label: string; x: number; y: number }[];
  /** Vertical limit line (the budget), if known. */
  limitX?: { x: number; label: string };
  yFormat?: (v: number) => string;
  /**
   * Values below this are outliers (e.g. W2A2 episodes far below the rest): the axis starts near it and they
   * are drawn on the axis floor as hollow triangles, counted in a note, so they do not squash the others.
   */
  yFloor?: number;
}

/** Tukey's lower fence (Q1 - 1.5 IQR) of `values` when some fall below it, else undefined. */
export function lowOutlierFloor(values: readonly number[]): number | undefined {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length < 8) return undefined;
  const q = (f: number) => v[Math.min(v.length - 1, Math.floor(f * (v.length - 1)))];
  const q1 = q(0.25);
  const iqr = q(0.75) - q1;
  if (!(iqr > 0)) return undefined;
  const fence = q1 - 1.5 * iqr;
  return v[0] < fence ? fence : undefined;
}

export function scatterChart(spec: ScatterChartSpec): string {
  const legendItems = [
    ...spec.series.map((s) => ({ name: s.name, color: s.color, shape: 'dot' as const })),
    ...(spec.refs && spec.refs.length ? [{ name: 'uniform precision', color: '#222', shape: 'diamond' as const }] : []),
  ];
  const fr = {
    ...FRAME,
    height: FRAME.height + 20,
    top:
      FRAME.top +
      legendRows(
        legendItems.map((l) => l.name),
        FRAME,
      ) *
        14,
  };
  const xs = [
    ...spec.series.flatMap((s) => s.points.map((p) => p.x)),
    ...(spec.refs ?? []).map((r) => r.x),
    ...(spec.limitX ? [spec.limitX.x] : []),
  ];
  const allYs = [...spec.series.flatMap((s) => s.points.map((p) => p.y)), ...(spec.refs ?? []).map((r) => r.y)];
  const floor = spec.yFloor;
  const ys = floor === undefined ? allYs : [...allYs.filter((v) => v >= floor), floor];
  const x = linearScale(xs, [fr.left, fr.width - fr.right]);
  const yScale = linearScale(ys, [fr.height - fr.bottom, fr.top]);
  const below = (v: number) => floor !== undefined && v < yScale.domain[0];
  const y = ((v: number) => yScale(below(v) ? yScale.domain[0] : v)) as Scale;
  y.domain = yScale.domain;
  y.ticks = yScale.ticks;
  const parts = [open(spec.id, spec.title, fr), axes(fr, x, y, spec.xLabel, spec.yLabel, formatTick, spec.yFormat)];
  if (spec.limitX && Number.isFinite(spec.limitX.x)) {
    const px = x(spec.limitX.x);
    parts.push(
      `<line class="limit" x1="${n(px)}" y1="${n(fr.top)}" x2="${n(px)}" y2="${n(fr.height - fr.bottom)}"/>` +
        `<text class="limit-label" x="${n(px + 4)}" y="${n(fr.top + 12)}">${esc(spec.limitX.label)}</text>`,
    );
  }
  for (const s of spec.series) {
    const dots = s.points
      .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y))
      .map((p) => {
        const fill = p.filled === false ? `fill="none" stroke="${s.color}"` : `fill="${s.color}"`;
        const t = p.title ? `<title>${esc(p.title)}</title>` : '';
        if (below(p.y)) {
          const px = x(p.x);
          const py = y(p.y);
          return `<path class="mark dot outlier" d="M${n(px - 3)} ${n(py - 5)} h6 l-3 5 z" fill="none" stroke="${s.color}">${t}</path>`;
        }
        return `<circle class="mark dot" cx="${n(x(p.x))}" cy="${n(y(p.y))}" r="2.6" ${fill} fill-opacity="0.45" stroke-opacity="0.6">${t}</circle>`;
      });
    parts.push(`<g class="series" data-series="${esc(s.name)}">${dots.join('')}</g>`);
  }
  for (const s of spec.series) {
    const front = (s.front ?? []).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
    if (front.length === 0) continue;
    // step line: accuracy holds until the next (costlier, more accurate) point
    const d: string[] = [];
    front.forEach((p, i) => {
      if (i === 0) d.push(`M${n(x(p.x))} ${n(y(p.y))}`);
      else {
        const prev = front[i - 1];
        d.push(`L${n(x(p.x))} ${n(y(prev.y))}`, `L${n(x(p.x))} ${n(y(p.y))}`);
      }
    });
    parts.push(`<path class="mark front" d="${d.join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const p of front) {
      const t = p.title ? `<title>${esc(p.title)}</title>` : '';
      parts.push(
        `<circle class="mark front-dot" cx="${n(x(p.x))}" cy="${n(y(p.y))}" r="4" fill="${s.color}" stroke="#fff" stroke-width="1">${t}</circle>`,
      );
    }
  }
  for (const r of spec.refs ?? []) {
    if (!Number.isFinite(r.x) || !Number.isFinite(r.y)) continue;
    const px = x(r.x);
    const py = y(r.y);
    const nearRight = px > fr.width - fr.right - 48;
    parts.push(
      `<path class="mark ref" d="M${n(px)} ${n(py - 6)} l6 6 l-6 6 l-6 -6 z" fill="#222"><title>${esc(r.label)}</title></path>` +
        `<text class="ref-label" x="${n(nearRight ? px - 8 : px + 8)}" y="${n(py - 4)}" text-anchor="${nearRight ? 'end' : 'start'}">${esc(r.label)}</text>`,
    );
  }
  const outliers = allYs.filter((v) => Number.isFinite(v) && below(v)).length;
  if (outliers > 0) {
    const fmt = spec.yFormat ?? formatTick;
    parts.push(
      `<text class="outlier-note" x="${n(fr.width - fr.right)}" y="${n(fr.height - fr.bottom - 4)}" text-anchor="end">` +
        `\u25bd ${outliers} point${outliers === 1 ? '' : 's'} below ${esc(fmt(yScale.domain[0]))} drawn on the axis floor</text>`,
    );
  }
  parts.push(legend(fr, legendItems));
  parts.push('</svg>');
  return parts.join('');
}

// ---------------------------------------------------------------------------------------------------------

export interface BarChartSpec {
  id: string;
  title: string;
  categories: string[];
  series: { name: string; color: string; values: number[] }[];
  yLabel: string;
  yMax?: number;
}

/** Grouped bars (one group per category). */
export function barChart(spec: BarChartSpec): string {
  const labelRoom = Math.min(90, 8 + Math.max(...spec.categories.map((c) => c.length), 1) * 5.5);
  const width = Math.max(FRAME.width, FRAME.left + FRAME.right + spec.categories.length * 26);
  const fr: Frame = { ...FRAME, width, height: 250 + labelRoom, bottom: 24 + labelRoom };
  const values = spec.series.flatMap((s) => s.values);
  const y = linearScale([0, spec.yMax ?? Math.max(...values, 1)], [fr.height - fr.bottom, fr.top]);
  const x0 = fr.left;
  const x1 = fr.width - fr.right;
  const groupW = (x1 - x0) / Math.max(1, spec.categories.length);
  const barW = Math.max(2, (groupW * 0.8) / Math.max(1, spec.series.length));
  const parts = [open(spec.id, spec.title, fr)];
  for (const t of y.ticks) {
    const py = y(t);
    parts.push(`<line class="grid" x1="${n(x0)}" y1="${n(py)}" x2="${n(x1)}" y2="${n(py)}"/>`);
    parts.push(`<text class="tick" x="${n(x0 - 6)}" y="${n(py + 4)}" text-anchor="end">${esc(formatTick(t))}</text>`);
  }
  const base = y(0);
  spec.categories.forEach((cat, i) => {
    const gx = x0 + i * groupW + groupW * 0.1;
    spec.series.forEach((s, j) => {
      const v = s.values[i] ?? 0;
      const top = y(v);
      parts.push(
        `<rect class="mark bar" x="${n(gx + j * barW)}" y="${n(Math.min(top, base))}" width="${n(barW - 1)}" height="${n(Math.abs(base - top))}" fill="${s.color}">` +
          `<title>${esc(`${cat} ${s.name} ${v}`)}</title></rect>`,
      );
    });
    const cx = x0 + (i + 0.5) * groupW;
    const ly = fr.height - fr.bottom + 12;
    parts.push(
      `<text class="tick" transform="translate(${n(cx)} ${n(ly)}) rotate(-45)" text-anchor="end">${esc(cat)}</text>`,
    );
  });
  parts.push(`<line class="axis" x1="${n(x0)}" y1="${n(base)}" x2="${n(x1)}" y2="${n(base)}"/>`);
  parts.push(`<line class="axis" x1="${n(x0)}" y1="${n(fr.height - fr.bottom)}" x2="${n(x0)}" y2="${n(fr.top)}"/>`);
  parts.push(
    `<text class="label" transform="translate(14 ${n((fr.top + fr.height - fr.bottom) / 2)}) rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}</text>`,
  );
  parts.push(
    legend(
      fr,
      spec.series.map((s) => ({ name: s.name, color: s.color, shape: 'rect' as const })),
    ),
  );
  parts.push('</svg>');
  return parts.join('');
}

/**
 * Self-contained HTML comparison report: inline CSS and inline SVG charts made here, no scripts, no fonts
 * or anything else fetched. Per (profile, budget) group: summary table, learning curves (reward and best
 * feasible accuracy vs episode, mean and min-max band over seeds), accuracy vs latency and vs energy with
 * each agent's Pareto front and the uniform-precision points, the per-layer bits of each agent's best,
 * and the device profile; then the runs with their configuration.
 */
import { parseConstraint } from '../experiment/experiment.js';
import { VERSION } from '../version.js';
import { groupCells, type AgentSeries, type ReportGroup, type ReportRun } from './load.js';
import { bitsText, kb, pct, pctAxis, pm, pmSig, sig } from './format.js';
import { SUMMARY_HEADER } from './markdown.js';
import {
  bestFeasibleSoFar,
  cellOutcome,
  curveOverSeeds,
  movingAverage,
  paretoFront,
  rewardWindow,
  summariseSeries,
  uniformPoints,
  type AgentSummary,
  type UniformSummary,
} from './stats.js';
import {
  groupStatistics,
  statisticsCells,
  statisticsNote,
  STATISTICS_HEADER,
  type GroupStatistics,
} from './significance.js';
import {
  PALETTE,
  barChart,
  esc,
  lineChart,
  lowOutlierFloor,
  scatterChart,
  type BandPoint,
  type ScatterPoint,
} from './svg.js';

/** Most points drawn per line / per scatter series (evenly thinned beyond; fronts are never thinned). */
const MAX_LINE_POINTS = 400;
const MAX_DOTS = 500;

const CSS = `
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; margin: 0 auto; max-width: 1220px; padding: 16px 24px 48px; color: #1d1d1f; background: #fff; line-height: 1.4; }
h1 { font-size: 1.6em; margin: 0.4em 0 0.2em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 2px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.05em; margin: 1.4em 0 0.5em; color: #333; }
p.meta, p.note { color: #555; font-size: 0.9em; margin: 0.3em 0; }
nav ul { padding-left: 1.2em; margin: 0.3em 0; }
table { border-collapse: collapse; font-size: 0.88em; margin: 6px 0 10px; }
th, td { border: 1px solid #d8d8d8; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f3f3f5; }
td:first-child, th:first-child { text-align: left; }
td.swatch span { display: inline-block; width: 10px; height: 10px; margin-right: 6px; border-radius: 2px; vertical-align: baseline; }
.charts { display: flex; flex-wrap: wrap; gap: 12px 18px; }
.charts figure { margin: 0; }
figcaption { font-size: 0.82em; color: #555; max-width: 560px; }
svg.chart { background: #fff; border: 1px solid #e4e4e7; border-radius: 4px; display: block; max-width: 100%; height: auto; }
svg.chart text { font-family: inherit; fill: #333; }
svg.chart .tick { font-size: 10px; fill: #555; }
svg.chart .label { font-size: 11px; }
svg.chart .legend { font-size: 11px; }
svg.chart .ref-label { font-size: 10px; fill: #222; }
svg.chart .grid { stroke: #eee; stroke-width: 1; }
svg.chart .axis { stroke: #888; stroke-width: 1; }
svg.chart .limit { stroke: #c00; stroke-width: 1.2; stroke-dasharray: 5 4; }
svg.chart .limit-label { font-size: 10px; fill: #c00; }
pre { background: #f7f7f9; border: 1px solid #e4e4e7; padding: 8px; overflow: auto; max-height: 420px; font-size: 0.8em; }
details { margin: 6px 0; }
summary { cursor: pointer; color: #333; }
.status-done { color: #2a7a2a; } .status-running { color: #b26b00; } .status-pending { color: #777; } .status-failed { color: #c00; }
`;

function thin<T>(items: readonly T[], max: number): T[] {
  if (items.length <= max) return items.slice();
  const out: T[] = [];
  const step = items.length / max;
  for (let i = 0; i < max; i++) out.push(items[Math.floor(i * step)]);
  if (out[out.length - 1] !== items[items.length - 1]) out.push(items[items.length - 1]);
  return out;
}

function curvePoints(perSeed: number[][]): BandPoint[] {
  return thin(
    curveOverSeeds(perSeed).map((p) => ({ x: p.episode, y: p.mean, lo: p.min, hi: p.max })),
    MAX_LINE_POINTS,
  );
}

function learningCharts(g: ReportGroup): string {
  const maxEpisodes = Math.max(1, ...g.cells.map((c) => c.episodes.length));
  const w = rewardWindow(maxEpisodes);
  const reward = lineChart({
    id: `reward-${g.key}`,
    title: `Reward per episode (${g.title})`,
    xLabel: 'episode',
    yLabel: w > 1 ? `reward (moving average of ${w})` : 'reward',
    series: g.series.map((s) => ({
      name: s.name,
      color: s.color,
      points: curvePoints(
        s.cells.map((c) =>
          movingAverage(
            c.episodes.map((e) => e.reward),
            w,
          ),
        ),
      ),
    })),
  });
  const acc = lineChart({
    id: `best-accuracy-${g.key}`,
    title: `Best feasible accuracy so far (${g.title})`,
    xLabel: 'episode',
    yLabel: 'best feasible validation accuracy',
    yFormat: pctAxis,
    series: g.series.map((s) => ({
      name: s.name,
      color: s.color,
      points: curvePoints(s.cells.map((c) => bestFeasibleSoFar(c.episodes))),
    })),
  });
  const seeds = Math.max(...g.series.map((s) => s.cells.length));
  const spread = seeds > 1 ? 'Lines: mean over seeds; bands: min–max over seeds.' : 'One seed per agent.';
  return (
    `<div class="charts"><figure>${reward}<figcaption>${esc(spread)}${w > 1 ? ` Rewards smoothed over ${w} episodes per seed before averaging.` : ''}</figcaption></figure>` +
    `<figure>${acc}<figcaption>${esc(spread)} Highest validation accuracy among feasible episodes up to each episode.</figcaption></figure></div>`
  );
}

/** The budget's limit on a metric in its unit (ms / uJ), using the W8A8 reference for relative limits. */
function limitOf(
  g: ReportGroup,
  metric: 'latency' | 'energy',
  uniform: UniformSummary[],
): { x: number; label: string } | undefined {
  const texts = g.cells[0]?.file.budget.constraints ?? [];
  for (const t of texts) {
    const c = parseConstraint(t);
    if ('error' in c || c.metric !== metric) continue;
    if (!c.relative) return { x: c.value, label: c.text };
    const ref = uniform.find((u) => u.wBits === 8 && u.aBits === 8);
    if (ref) return { x: c.value * (metric === 'latency' ? ref.latencyMs : ref.energyUj), label: c.text };
  }
  return undefined;
}

function scatterCharts(g: ReportGroup, uniform: UniformSummary[]): string {
  const make = (metric: 'latency' | 'energy') => {
    const key = metric === 'latency' ? 'latencyMs' : 'energyUj';
    const series = g.series.map((s) => {
      const pts: (ScatterPoint & { feasible: boolean })[] = [];
      for (const c of s.cells) {
        for (const e of c.episodes) {
          if (e.accuracy === null || !Number.isFinite(e.accuracy)) continue;
          pts.push({
            x: e[key],
            y: e.accuracy,
            filled: e.feasible,
            feasible: e.feasible,
            title: `${s.name} seed ${c.seed} ep ${e.episode}: ${pct(e.accuracy)}, ${sig(e[key])} ${metric === 'latency' ? 'ms' : 'uJ'}${e.feasible ? '' : ' (infeasible)'}`,
          });
        }
      }
      return {
        name: s.name,
        color: s.color,
        points: thin(pts, MAX_DOTS),
        front: paretoFront(pts.filter((p) => p.feasible)),
      };
    });
    return scatterChart({
      id: `acc-vs-${metric}-${g.key}`,
      title: `Accuracy vs ${metric} (${g.title})`,
      xLabel: metric === 'latency' ? 'latency (ms)' : 'energy (uJ)',
      yLabel: 'validation accuracy',
      yFormat: pctAxis,
      series,
      refs: uniform
        .filter((u) => u.accuracy !== null)
        .map((u) => ({ label: u.label, x: u[key], y: u.accuracy as number })),
      limitX: limitOf(g, metric, uniform),
      yFloor: lowOutlierFloor([
        ...series.flatMap((s) => s.points.map((p) => p.y)),
        ...uniform.map((u) => u.accuracy ?? NaN),
      ]),
    });
  };
  const caption = (metric: 'latency' | 'energy') =>
    'Dots: evaluated episodes of every seed (hollow: over budget). Lines: each agent’s Pareto front over its feasible episodes. ' +
    'Diamonds: uniform precision (validation accuracy at the shared weights, not fine-tuned).' +
    (limitOf(g, metric, uniform) ? ' Dashed: the budget.' : ` No ${metric} budget in this group, so no budget line.`) +
    ' Triangles on the floor: outliers far below the others (e.g. W2A2), if any.';
  return `<div class="charts"><figure>${make('latency')}<figcaption>${esc(caption('latency'))}</figcaption></figure><figure>${make('energy')}<figcaption>${esc(caption('energy'))}</figcaption></figure></div>`;
}

function bitCharts(g: ReportGroup, summaries: AgentSummary[]): string {
  const maxBits = Math.max(8, ...(g.cells[0]?.file.bitChoices ?? [8]).filter((b) => b < 32));
  const charts = summaries.map((sum) => {
    const b = sum.best;
    if (!b) return `<figure><p class="note">${esc(sum.series.name)}: no feasible allocation yet.</p></figure>`;
    const names =
      b.layerNames && b.layerNames.length === b.bits.length ? b.layerNames : b.bits.map((_, i) => `L${i + 1}`);
    const chart = barChart({
      id: `bits-${g.key}-${sum.series.name}`.replace(/[^A-Za-z0-9_-]/g, '-'),
      title: `${sum.series.name}: bits of the best allocation`,
      categories: names,
      yLabel: 'bits',
      yMax: maxBits,
      series: [
        { name: 'weights (wBits)', color: sum.series.color, values: b.bits.map((x) => Math.min(x.wBits, maxBits)) },
        {
          name: 'activations (aBits)',
          color: shade(sum.series.color),
          values: b.bits.map((x) => Math.min(x.aBits, maxBits)),
        },
      ],
    });
    const src = b.source === 'final' ? 'test accuracy after fine-tune' : 'validation accuracy (not fine-tuned yet)';
    return (
      `<figure>${chart}<figcaption>${esc(sum.series.name)} · seed ${b.cell.seed}: ${pct(b.accuracy)} ${esc(src)}, ` +
      `${sig(b.latencyMs)} ms, ${sig(b.energyUj)} uJ, ${kb(b.sizeBytes)} KB; bits (w/a) ${esc(bitsText(b.bits))}</figcaption></figure>`
    );
  });
  return `<div class="charts">${charts.join('')}</div>${seedBitTables(g)}`;
}

/** Every seed's best allocation (the charts show one seed per agent). */
function seedBitTables(g: ReportGroup): string {
  const rows: string[] = [];
  let names: string[] = [];
  for (const s of g.series) {
    for (const c of s.cells) {
      const o = cellOutcome(c);
      if (!o) {
        rows.push(`<tr><td>${esc(s.name)}</td><td>${c.seed}</td><td colspan="99">no feasible allocation yet</td></tr>`);
        continue;
      }
      if (o.layerNames && o.layerNames.length > names.length) names = o.layerNames;
      rows.push(
        `<tr><td>${esc(s.name)}</td><td>${c.seed}</td><td>${pct(o.accuracy)}${o.source === 'final' ? '' : ' (val)'}</td>` +
          o.bits.map((b) => `<td>${b.wBits}/${b.aBits}</td>`).join('') +
          '</tr>',
      );
    }
  }
  if (rows.length === 0) return '';
  const width = Math.max(0, ...g.series.flatMap((s) => s.cells.map((c) => cellOutcome(c)?.bits.length ?? 0)));
  const head = Array.from({ length: width }, (_, i) => `<th>${esc(names[i] ?? `L${i + 1}`)}</th>`).join('');
  return (
    `<details open><summary>best allocation of every seed (w/a bits)</summary><table class="seed-bits"><tr><th>agent</th><th>seed</th><th>accuracy</th>${head}</tr>` +
    rows.join('') +
    '</table></details>'
  );
}

/** Absolute local paths shortened to their last part (…/name): a report is shared, the machine's folders are not. */
export function hideLocalPaths(text: string): string {
  return text.replace(
    /(^|[\s"'=(,])\/(?:[^\s"'/,()]+\/)+([^\s"'/,()]*)/g,
    (_m, pre: string, last: string) => `${pre}…/${last}`,
  );
}

/** A lighter tint of a #rrggbb colour. */
function shade(hex: string): string {
  const m = /^#([0-9a-f]{6})$/i.exec(hex);
  if (!m) return '#999';
  const v = parseInt(m[1], 16);
  const mix = (c: number) => Math.round(c + (255 - c) * 0.5);
  const r = mix((v >> 16) & 255);
  const gg = mix((v >> 8) & 255);
  const b = mix(v & 255);
  return `#${((1 << 24) | (r << 16) | (gg << 8) | b).toString(16).slice(1)}`;
}

function summaryTable(summaries: AgentSummary[], uniform: UniformSummary[], stats: GroupStatistics): string {
  const head = `<tr>${[...SUMMARY_HEADER, ...STATISTICS_HEADER].map((h) => `<th>${esc(h)}</th>`).join('')}</tr>`;
  const rows = summaries.map((s) => {
    const cells = [
      `<td class="swatch"><span style="background:${s.series.color}"></span>${esc(s.series.name)}${s.partial ? ' †' : ''}</td>`,
      `<td>${s.done}/${s.seeds}</td>`,
      `<td>${esc(pm(s.accuracy, (v) => pct(v)))}</td>`,
      `<td>${esc(pmSig(s.latencyMs))}</td>`,
      `<td>${esc(pmSig(s.energyUj))}</td>`,
      `<td>${esc(pmSig(s.sizeBytes, 1024))}</td>`,
      `<td>${esc(pmSig(s.episodesToBest, 1, 1))}</td>`,
      `<td>${esc(pmSig(s.wallSeconds))}</td>`,
      ...statisticsCells(stats, s.series.name).map((c) => `<td>${esc(c)}</td>`),
    ];
    return `<tr>${cells.join('')}</tr>`;
  });
  let html = `<table class="summary">${head}${rows.join('')}</table><p class="note">${esc(statisticsNote(stats))}</p>`;
  if (summaries.some((s) => s.partial)) {
    html +=
      '<p class="note">† some seeds have not finished their fine-tune: their figures are the best validation accuracy so far.</p>';
  }
  if (uniform.length) {
    html +=
      '<p class="note">Uniform precision: <b>validation</b> accuracy of every layer at one width, measured at the search’s shared QAT weights ' +
      'before any final fine-tune (on the first evalSamples validation samples). It is not comparable to the fine-tuned <b>test</b> accuracy above, which is why it sits below it.</p>' +
      '<table class="uniform"><tr><th>uniform precision</th><th>val accuracy (not fine-tuned)</th><th>latency (ms)</th><th>energy (uJ)</th><th>size (KB)</th></tr>' +
      uniform
        .map(
          (u) =>
            `<tr><td>${esc(u.label)}</td><td>${pct(u.accuracy)}</td><td>${sig(u.latencyMs)}</td><td>${sig(u.energyUj)}</td><td>${kb(u.sizeBytes)}</td></tr>`,
        )
        .join('') +
      '</table>';
  }
  return html;
}

function groupSection(g: ReportGroup): string {
  const summaries = g.series.map(summariseSeries);
  const uniform = uniformPoints(g);
  const profileJson = g.cells[0]?.file.profile.json;
  const profilePath = g.cells[0]?.file.profile.path ?? '';
  return [
    `<section class="group" id="g-${esc(g.key)}">`,
    `<h2>${esc(g.title)}</h2>`,
    `<p class="meta">Profile <b>${esc(g.profile)}</b>, budget <b>${esc(g.budgetText)}</b>; agents: ${g.series.map((s) => esc(s.name)).join(', ')}; ` +
      `seeds per agent: ${g.series.map((s) => s.cells.length).join('/')}.</p>`,
    '<h3>Summary</h3>',
    '<p class="note">Accuracy: test accuracy after the final fine-tune of each seed’s best allocation; costs of that allocation; mean ± std over seeds.</p>',
    summaryTable(summaries, uniform, groupStatistics(g)),
    '<h3>Learning curves</h3>',
    learningCharts(g),
    '<h3>Accuracy vs cost</h3>',
    scatterCharts(g, uniform),
    '<h3>Bit allocation of each agent’s best</h3>',
    bitCharts(g, summaries),
    '<h3>Device profile</h3>',
    `<details><summary>${esc(g.profile)} (${esc(hideLocalPaths(profilePath))})</summary><pre>${esc(JSON.stringify(profileJson, null, 2) ?? '')}</pre></details>`,
    '</section>',
  ].join('\n');
}

function runSection(r: ReportRun): string {
  const info = r.info;
  const meta: [string, string][] = [
    ['directory', hideLocalPaths(r.dir)],
    ['experiment', info.name],
    ['model / dataset', `${String(r.experiment.model)} / ${String(r.experiment.dataset)}`],
    ['created', info.created],
    ['backend', info.backend],
    [
      'versions',
      `bitalloc ${info.versions.bitalloc}, tfjs ${info.versions.tfjs}${info.versions.tfjsNode ? `, tfjs-node ${info.versions.tfjsNode}` : ''}, node ${info.versions.node}`,
    ],
    ['platform', info.platform],
    ['command', hideLocalPaths(info.command.join(' '))],
  ];
  if (info.resumes.length) meta.push(['resumed', info.resumes.map((x) => x.at).join(', ')]);
  const cellRows = r.cells
    .map(
      (c) =>
        `<tr><td>${esc(c.id)}</td><td class="status-${c.status}">${c.status}</td><td>${c.episodes.length}</td><td>${c.final ? pct(c.final.testAccuracy) : '–'}</td></tr>`,
    )
    .join('');
  return [
    `<section class="run"><h3>${esc(r.name)}</h3>`,
    `<table class="meta">${meta.map(([k, v]) => `<tr><th>${esc(k)}</th><td style="text-align:left">${esc(v)}</td></tr>`).join('')}</table>`,
    `<details><summary>cells (${r.cells.length})</summary><table><tr><th>cell</th><th>status</th><th>episodes</th><th>test accuracy</th></tr>${cellRows}</table></details>`,
    `<details><summary>experiment.json</summary><pre>${esc(hideLocalPaths(JSON.stringify(r.experiment, null, 2)))}</pre></details>`,
    '</section>',
  ].join('\n');
}

export function renderHtml(runs: readonly ReportRun[], now: Date = new Date()): string {
  const groups = groupCells(runs, PALETTE);
  const title = `bitalloc report: ${runs.map((r) => r.name).join(', ')}`;
  const nav =
    groups.length > 1
      ? `<nav><b>Groups</b><ul>${groups.map((g) => `<li><a href="#g-${esc(g.key)}">${esc(g.title)}</a></li>`).join('')}</ul></nav>`
      : '';
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title>`,
    `<style>${CSS}</style>`,
    '</head><body>',
    `<h1>${esc(title)}</h1>`,
    `<p class="meta">Generated ${esc(now.toISOString())} by bitalloc ${esc(VERSION)} from ${runs.length} run director${runs.length === 1 ? 'y' : 'ies'}; ` +
      `${groups.length} (profile, budget) group${groups.length === 1 ? '' : 's'}.</p>`,
    nav,
    ...groups.map(groupSection),
    '<h2>Runs and configuration</h2>',
    ...runs.map(runSection),
    '</body></html>',
    '',
  ].join('\n');
}

export type { AgentSeries };

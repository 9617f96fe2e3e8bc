/**
 * `npm run bench -- dominance [--episodes 30,100] [--seeds 5] [--model resnet20] [--profile bitfusion-45nm]
 *  [--budget latency<=0.5x] [--noise 0.01] [--json]`
 *
 * The ablation of the agents' `maskDominated` option at equal episodes, on a proxy of the search that costs
 * seconds: the model's real layer inventory and the device's real cost table, with the synthetic accuracy model
 * of envs/synthetic.ts (per-layer sensitivities drawn from the seed, accuracy noise like a small validation
 * subset) instead of a trained network. Each agent picks its best feasible allocation by the noisy accuracy;
 * the figure is that allocation's exact accuracy (as a held-out test would measure it). Prints, per agent and
 * episode budget, the mean over seeds and the paired difference masked - unmasked with its 95% interval.
 */
import { initBackend } from '../src/backend/index.js';
import { setLogLevel } from '../src/log.js';
import { loadModel } from '../src/models/index.js';
import { buildCostTable, loadProfile } from '../src/hardware/index.js';
import { BitAllocationEnv, SyntheticEvaluator } from '../envs/index.js';
import type { Agent } from '../envs/types.js';
import { createAgent } from '../agents/index.js';
import { runEpisode } from '../src/search/episode.js';
import { pairedDifference } from '../src/report/significance.js';

function flag(argv: string[], name: string, fallback: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1] : fallback;
}

const VARIANTS: { label: string; agent: string; options: Record<string, unknown> }[] = [
  { label: 'random', agent: 'random', options: {} },
  { label: 'ppo', agent: 'ppo', options: {} },
  { label: 'ppo+mask', agent: 'ppo', options: { maskDominated: true } },
  { label: 'reinforce', agent: 'reinforce', options: {} },
  { label: 'reinforce+mask', agent: 'reinforce', options: { maskDominated: true } },
  { label: 'ppo+warm', agent: 'ppo', options: { warmStartLogit: 3 } },
  { label: 'ppo+mask+warm', agent: 'ppo', options: { maskDominated: true, warmStartLogit: 3 } },
  { label: 'reinforce+warm', agent: 'reinforce', options: { warmStartLogit: 3 } },
  { label: 'reinforce+mask+warm', agent: 'reinforce', options: { maskDominated: true, warmStartLogit: 3 } },
];

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const budgets = flag(argv, 'episodes', '30,100').split(',').map(Number);
  const seeds = [...Array(Number(flag(argv, 'seeds', '5'))).keys()].map((i) => i + 1);
  const modelName = flag(argv, 'model', 'resnet20');
  const profileName = flag(argv, 'profile', 'bitfusion-45nm');
  const budget = flag(argv, 'budget', 'latency<=0.5x');
  const noise = Number(flag(argv, 'noise', '0.01'));
  setLogLevel('warn');
  await initBackend('wasm');
  const net = await loadModel(modelName, { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
  const layers = net.layers;
  const bitChoices = [2, 3, 4, 5, 6, 7, 8];
  const table = buildCostTable(loadProfile(profileName), layers, [...bitChoices, 32]);
  net.model.dispose();
  const maxEpisodes = Math.max(...budgets);
  // result[label][budget] = per-seed exact accuracy of the best allocation found within that many episodes
  const result = new Map<string, Map<number, Map<number, number>>>();
  for (const v of VARIANTS) {
    const perBudget = new Map<number, Map<number, number>>(budgets.map((b) => [b, new Map()]));
    for (const seed of seeds) {
      const evaluator = new SyntheticEvaluator({ layers, seed: 100 + seed, noise });
      const env = new BitAllocationEnv({
        layers,
        bitChoices,
        cost: (bits) => table.costAllocation(bits),
        evaluator,
        constraints: [budget],
        constraintMode: 'lower',
        reward: 'haq',
        stepMode: 'joint',
        seed,
      });
      const agent: Agent = createAgent(v.agent, v.options);
      await agent.setup(env.agentContext(seed));
      let best: { observed: number; exact: number } | null = null;
      for (let e = 1; e <= maxEpisodes; e++) {
        const s = await runEpisode(env, agent);
        if (s.feasible && Number.isFinite(s.accuracy) && (!best || s.accuracy > best.observed))
          best = { observed: s.accuracy, exact: evaluator.accuracyOf(s.bits) };
        if (perBudget.has(e)) perBudget.get(e)!.set(seed, best ? best.exact : Number.NaN);
      }
      agent.dispose?.();
    }
    result.set(v.label, perBudget);
  }
  const rows = VARIANTS.flatMap((v) =>
    budgets.map((b) => {
      const values = [...result.get(v.label)!.get(b)!.values()];
      const mean = values.reduce((a, x) => a + x, 0) / values.length;
      const base = v.label.includes('+') ? v.label.slice(0, v.label.indexOf('+')) : 'random';
      const diff =
        v.label === 'random' ? null : pairedDifference(result.get(v.label)!.get(b)!, result.get(base)!.get(b)!);
      return { agent: v.label, episodes: b, mean, against: v.label === 'random' ? null : base, diff };
    }),
  );
  if (json) {
    process.stdout.write(JSON.stringify({ model: modelName, profile: profileName, budget, noise, seeds, rows }) + '\n');
    return;
  }
  process.stdout.write(
    `${modelName} on ${profileName}, ${budget}, synthetic accuracy (noise ${noise}), seeds ${seeds.join(',')}\n`,
  );
  process.stdout.write(
    'agent               episodes  mean exact acc %  vs          diff (pts)  95% CI           wins\n',
  );
  for (const r of rows) {
    const d = r.diff;
    const ci = d?.ci ? `[${(100 * d.ci[0]).toFixed(2)}, ${(100 * d.ci[1]).toFixed(2)}]` : '';
    process.stdout.write(
      `${r.agent.padEnd(19)} ${String(r.episodes).padStart(8)}  ${(100 * r.mean).toFixed(2).padStart(16)}  ${(r.against ?? '').padEnd(10)}  ${d ? (100 * d.mean).toFixed(2).padStart(10) : ''.padStart(10)}  ${ci.padEnd(16)} ${d ? `${d.wins}/${d.n}` : ''}\n`,
    );
  }
}

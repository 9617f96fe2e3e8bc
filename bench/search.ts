/**
 * `npm run bench -- search [--json] [--episodes N] [--agents a,b] [--qat-steps K]`: episodes per second of the search loop on
 * lenet5/mnist/bitfusion-45nm with K = 0 QAT steps (evaluation only), and the share of episode time spent
 * outside QAT and evaluation (agent + env + simulator). Target: that share <= 5%.
 */
import { initBackend } from '../src/backend/index.js';
import { setLogLevel } from '../src/log.js';
import { runSearch, searchSpec } from '../src/search/search.js';

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

export async function run(argv: string[]): Promise<void> {
  const json = argv.includes('--json');
  const episodes = Number(flag(argv, 'episodes') ?? 40);
  const agents = (flag(argv, 'agents') ?? 'ppo,reinforce,ddpg,amed,random').split(',');
  const qatSteps = Number(flag(argv, 'qat-steps') ?? 0);
  setLogLevel('warn');
  const backend = await initBackend('auto');
  const rows: {
    agent: string;
    episodes: number;
    episodesPerSec: number;
    otherShare: number;
    otherMsPerEpisode: number;
    evalMsPerEpisode: number;
  }[] = [];
  for (const agent of agents) {
    const spec = searchSpec({
      agent,
      episodes,
      qatSteps,
      warmupEpochs: 0,
      finetuneEpochs: 0,
      evalSamples: 500,
      checkpointEvery: 1000,
    });
    const r = await runSearch(spec, { plainProgress: true });
    const total = r.timing.qatSeconds + r.timing.evalSeconds + r.timing.otherSeconds;
    rows.push({
      agent,
      episodes: r.episodes,
      episodesPerSec: r.episodes / total,
      otherShare: r.timing.otherShare,
      otherMsPerEpisode: (1000 * r.timing.otherSeconds) / r.episodes,
      evalMsPerEpisode: (1000 * r.timing.evalSeconds) / r.episodes,
    });
  }
  const result = {
    bench: 'search',
    backend: backend.name,
    model: 'lenet5',
    qatSteps,
    evalSamples: 500,
    target: 'otherShare <= 0.05',
    agents: rows,
  };
  if (json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  process.stdout.write(
    `search loop, lenet5/mnist/bitfusion-45nm, K=${qatSteps}, 500 validation samples per episode, backend ${backend.name}\n`,
  );
  process.stdout.write('agent       episodes  episodes/s  eval ms/ep  agent+env+sim ms/ep  share outside QAT+eval\n');
  for (const r of rows) {
    process.stdout.write(
      `${r.agent.padEnd(10)}  ${String(r.episodes).padStart(8)}  ${r.episodesPerSec.toFixed(2).padStart(10)}  ${r.evalMsPerEpisode.toFixed(1).padStart(10)}  ${r.otherMsPerEpisode.toFixed(2).padStart(19)}  ${(100 * r.otherShare).toFixed(2).padStart(21)}%\n`,
    );
  }
}

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isUserError } from '../src/errors.js';
import { profilesDir } from '../src/hardware/index.js';
import { validateExperiment } from '../src/experiment/experiment.js';
import {
  appendEpisode,
  createRun,
  loadCheckpoint,
  openRun,
  readEpisodes,
  saveCheckpoint,
  truncateEpisodes,
  writeJsonAtomic,
  type CellStore,
  type EpisodeRecord,
  type RunStore,
} from '../src/run/run-store.js';

const root = mkdtempSync(join(tmpdir(), 'bitalloc-run-store-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = () => join(root, `run-${++dirCount}`);

const experiment = validateExperiment({
  name: 'store-test',
  model: 'lenet5',
  dataset: 'mnist',
  profiles: ['bitfusion-45nm'],
  budgets: [['latency<=0.5x']],
  agents: ['random', 'uniform'],
  seeds: [1, 2],
  episodes: 5,
});

function newRun(): RunStore {
  return createRun(freshDir(), experiment, { backend: 'wasm', tfjs: '4.22.0', command: ['bitalloc', 'run', 'test'] });
}

function episode(n: number, extra: Partial<EpisodeRecord> = {}): EpisodeRecord {
  return {
    episode: n,
    bits: [
      { wBits: 8, aBits: 8 },
      { wBits: 3, aBits: 5 },
      { wBits: 2, aBits: 4 },
    ],
    accuracy: 0.9 - n * 0.0123456789,
    loss: 0.3 + n / 7,
    latencyMs: 0.123456 * n,
    energyUj: 12.5 / n,
    sizeBytes: 4096 + n,
    peakMemoryBytes: 2048,
    feasible: n % 2 === 0,
    reward: -0.01 * n,
    wallMs: 17.25,
    ...extra,
  };
}

function fill(cell: CellStore, n: number): EpisodeRecord[] {
  const recs = Array.from({ length: n }, (_, i) => episode(i + 1));
  for (const r of recs) appendEpisode(cell, r);
  return recs;
}

function throwsUserError(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isUserError(e), `expected a UserError, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

test('createRun writes experiment.json, run.json with every cell pending, and cell.json with the profile JSON', () => {
  const run = newRun();
  assert.deepEqual(JSON.parse(readFileSync(join(run.dir, 'experiment.json'), 'utf8')), experiment);
  const info = JSON.parse(readFileSync(join(run.dir, 'run.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(info['format'], 'bitalloc-run');
  assert.equal(info['backend'], 'wasm');
  assert.deepEqual(info['command'], ['bitalloc', 'run', 'test']);
  assert.equal((info['versions'] as { node: string }).node, process.versions.node);
  const cells = info['cells'] as { id: string; status: string }[];
  assert.equal(cells.length, 4);
  assert.ok(cells.every((c) => c.status === 'pending'));
  const cell = run.cells[0];
  const file = JSON.parse(readFileSync(join(cell.dir, 'cell.json'), 'utf8')) as Record<string, unknown>;
  const profileJson = JSON.parse(readFileSync(join(profilesDir(), 'bitfusion-45nm.json'), 'utf8')) as unknown;
  assert.deepEqual((file['profile'] as { json: unknown }).json, profileJson);
  assert.equal((file['agent'] as { name: string }).name, 'random');
  assert.deepEqual((file['budget'] as { constraints: string[] }).constraints, ['latency<=0.5x']);
  assert.equal(file['seed'], 1);
  assert.equal(file['model'], 'lenet5');
  assert.equal(cell.spec.budget.parsed[0]?.value, 0.5);
  run.close();
});

test('createRun refuses a non-empty directory (a run is never overwritten)', () => {
  const run = newRun();
  run.close();
  throwsUserError(
    () => createRun(run.dir, experiment, { backend: 'wasm', tfjs: '4.22.0' }),
    /already exists/,
    /--resume/,
  );
});

test('episodes read back exactly as appended, including null accuracy', () => {
  const run = newRun();
  const cell = run.cells[0];
  const recs = fill(cell, 6);
  const rejected = episode(7, { accuracy: null, loss: null, feasible: false, reward: -1 });
  appendEpisode(cell, rejected);
  const read = readEpisodes(cell);
  assert.equal(read.dropped, null);
  assert.deepEqual(read.episodes, [...recs, rejected]);
  run.close();
});

test('appending an episode out of order is refused (a resume must truncate first)', () => {
  const run = newRun();
  const cell = run.cells[0];
  fill(cell, 3);
  assert.throws(() => appendEpisode(cell, episode(3)), /episode 3 but the file holds 3 episodes/);
  assert.throws(() => appendEpisode(cell, episode(5)), /next is 4/);
  run.close();
});

test('a torn last line (no newline) is dropped, reported, and cut off so appends continue cleanly', () => {
  const run = newRun();
  const cell = run.cells[0];
  const recs = fill(cell, 4);
  const good = readFileSync(cell.episodesPath, 'utf8');
  const torn = JSON.stringify(episode(5)).slice(0, 37);
  writeFileSync(cell.episodesPath, good + torn);
  const read = readEpisodes(cell);
  assert.deepEqual(read.episodes, recs);
  assert.deepEqual(read.dropped, { line: 5, text: torn });
  assert.equal(readFileSync(cell.episodesPath, 'utf8'), good, 'file repaired to the last good line');
  appendEpisode(cell, episode(5));
  assert.deepEqual(readEpisodes(cell).episodes, [...recs, episode(5)]);
});

test('an invalid JSON last line that ends with a newline is also treated as torn', () => {
  const run = newRun();
  const cell = run.cells[1];
  const recs = fill(cell, 2);
  const good = readFileSync(cell.episodesPath, 'utf8');
  writeFileSync(cell.episodesPath, good + '{"episode":3,"bits":[{"wB\n');
  const read = readEpisodes(cell);
  assert.deepEqual(read.episodes, recs);
  assert.equal(read.dropped?.line, 3);
  assert.equal(readFileSync(cell.episodesPath, 'utf8'), good);
  run.close();
});

test('reading without repair (reports) leaves a torn file untouched', () => {
  const run = newRun();
  const cell = run.cells[0];
  fill(cell, 2);
  const text = readFileSync(cell.episodesPath, 'utf8') + '{"episode":3';
  writeFileSync(cell.episodesPath, text);
  const read = readEpisodes(cell, { repair: false });
  assert.equal(read.episodes.length, 2);
  assert.ok(read.dropped);
  assert.equal(readFileSync(cell.episodesPath, 'utf8'), text);
  run.close();
});

test('a bad line in the middle is an error naming the file and the line', () => {
  const run = newRun();
  const cell = run.cells[0];
  fill(cell, 3);
  const lines = readFileSync(cell.episodesPath, 'utf8').split('\n');
  lines[1] = '{ not json';
  writeFileSync(cell.episodesPath, lines.join('\n'));
  throwsUserError(() => readEpisodes(cell), /episodes\.jsonl/, /line 2 is not valid JSON/);
  lines[1] = JSON.stringify(episode(5));
  writeFileSync(cell.episodesPath, lines.join('\n'));
  throwsUserError(() => readEpisodes(cell), /line 2 holds episode 5, expected episode 2/);
  lines[1] = JSON.stringify({ episode: 2, bits: 'x' });
  writeFileSync(cell.episodesPath, lines.join('\n'));
  throwsUserError(() => readEpisodes(cell), /line 2 is not an episode record: bits/);
  run.close();
});

test('truncateEpisodes keeps the first episodes (resume from a checkpoint)', () => {
  const run = newRun();
  const cell = run.cells[0];
  const recs = fill(cell, 5);
  truncateEpisodes(cell, 3);
  assert.deepEqual(readEpisodes(cell).episodes, recs.slice(0, 3));
  appendEpisode(cell, episode(4));
  assert.equal(readEpisodes(cell).episodes.length, 4);
  run.close();
});

test('offerBest keeps the most accurate feasible episode (ties: lower latency)', () => {
  const run = newRun();
  const cell = run.cells[0];
  assert.equal(cell.offerBest(episode(1, { feasible: false, accuracy: 0.99 })), false);
  assert.equal(cell.offerBest(episode(2, { feasible: true, accuracy: 0.8, latencyMs: 2 })), true);
  assert.equal(cell.offerBest(episode(3, { feasible: true, accuracy: 0.7 })), false);
  assert.equal(cell.offerBest(episode(4, { feasible: true, accuracy: 0.8, latencyMs: 1 })), true);
  assert.equal(cell.offerBest(episode(5, { feasible: true, accuracy: null })), false);
  const best = JSON.parse(readFileSync(cell.bestPath, 'utf8')) as EpisodeRecord;
  assert.equal(best.episode, 4);
  run.close();
});

test('writeJsonAtomic replaces the file and leaves no temp file; a failed write leaves the old content', () => {
  const dir = freshDir();
  mkdirSync(dir);
  const path = join(dir, 'x.json');
  writeJsonAtomic(path, { a: 1 });
  writeJsonAtomic(path, { a: 2, b: [1, 2, 3] });
  assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { a: 2, b: [1, 2, 3] });
  assert.deepEqual(readdirSync(dir), ['x.json']);
  assert.throws(() => writeJsonAtomic(path, { big: 10n }), /BigInt/);
  assert.throws(() => writeJsonAtomic(join(dir, 'missing-folder', 'y.json'), { a: 1 }), /ENOENT/);
  assert.deepEqual(JSON.parse(readFileSync(path, 'utf8')), { a: 2, b: [1, 2, 3] });
  assert.deepEqual(readdirSync(dir), ['x.json']);
});

test('writeJsonAtomic killed at random moments never leaves a partial file (child processes, SIGKILL)', async () => {
  const dir = freshDir();
  mkdirSync(dir);
  const storeUrl = new URL('../src/run/run-store.js', import.meta.url).href;
  const script = join(dir, 'writer.mjs');
  // alternately writes two large, different JSON documents as fast as it can
  writeFileSync(
    script,
    `import { writeJsonAtomic } from ${JSON.stringify(storeUrl)};
const [path] = process.argv.slice(2);
const make = (tag) => ({ tag, rows: Array.from({ length: 20000 }, (_, i) => ({ i, tag, v: i * 1.5 })) });
const docs = [make('A'), make('B')];
writeJsonAtomic(path, docs[0]);
process.stdout.write('ready\\n');
for (let k = 1; ; k++) writeJsonAtomic(path, docs[k % 2]);
`,
  );
  const trials = [20, 70, 150];
  await Promise.all(
    trials.map(
      (delayMs, t) =>
        new Promise<void>((resolve, reject) => {
          const path = join(dir, `doc-${t}.json`);
          const child = spawn(process.execPath, [script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
          child.stdout.once('data', () => setTimeout(() => child.kill('SIGKILL'), delayMs));
          child.on('error', reject);
          child.on('exit', () => {
            try {
              const doc = JSON.parse(readFileSync(path, 'utf8')) as { tag: string; rows: unknown[] };
              assert.ok(doc.tag === 'A' || doc.tag === 'B');
              assert.equal(doc.rows.length, 20000);
              resolve();
            } catch (e) {
              reject(e instanceof Error ? e : new Error(String(e)));
            }
          });
        }),
    ),
  );
  // what a killed writer leaves behind is only temp files with its pid, which a later writer ignores
  const leftovers = readdirSync(dir).filter((f) => f.includes('.tmp-'));
  assert.ok(
    leftovers.every((f) => /^doc-\d\.json\.tmp-\d+-\d+$/.test(f)),
    leftovers.join(', '),
  );
});

test('openRun (resume) removes temp files left by a crash and turns running cells back to pending', () => {
  const run = newRun();
  const cell = run.cells[0];
  run.setCellStatus(cell.id, 'running');
  run.setCellStatus(run.cells[1].id, 'done');
  run.close();
  writeFileSync(join(run.dir, 'run.json.tmp-999999-3'), '{"partial');
  writeFileSync(join(cell.dir, 'best.json.tmp-999999-4'), '{"partial');
  const resumed = openRun(run.dir, { command: ['bitalloc', 'run', '--resume', run.dir] });
  assert.ok(!existsSync(join(run.dir, 'run.json.tmp-999999-3')));
  assert.ok(!existsSync(join(cell.dir, 'best.json.tmp-999999-4')));
  assert.deepEqual(
    resumed.cells.map((c) => c.status),
    ['pending', 'done', 'pending', 'pending'],
  );
  assert.deepEqual(
    resumed.pendingCells().map((c) => c.id),
    [0, 2, 3].map((i) => run.cells[i].id),
  );
  const info = JSON.parse(readFileSync(join(run.dir, 'run.json'), 'utf8')) as { resumes: { command: string[] }[] };
  assert.deepEqual(info.resumes[0]?.command, ['bitalloc', 'run', '--resume', run.dir]);
  resumed.close();
});

test('openRun refuses a run another live process is writing, and takes over a stale lock', () => {
  const run = newRun();
  run.close();
  writeFileSync(join(run.dir, 'run.lock'), JSON.stringify({ pid: process.ppid, hostname: hostname() }));
  throwsUserError(() => openRun(run.dir), /being written by process/);
  openRun(run.dir, { readOnly: true }); // reading is fine
  writeFileSync(join(run.dir, 'run.lock'), JSON.stringify({ pid: 2 ** 22 + 12345, hostname: hostname() }));
  const again = openRun(run.dir);
  assert.equal(JSON.parse(readFileSync(join(run.dir, 'run.lock'), 'utf8')).pid, process.pid);
  again.close();
  assert.ok(!existsSync(join(run.dir, 'run.lock')));
});

test('openRun: a missing directory or one that is not a run is a UserError naming it', () => {
  throwsUserError(() => openRun(join(root, 'nope')), /nope/, /run directory not found/);
  const plain = freshDir();
  mkdirSync(plain);
  throwsUserError(() => openRun(plain), /not a bitalloc run directory \(no run\.json\)/);
  writeFileSync(join(plain, 'run.json'), '{"format": "something-else"}');
  throwsUserError(() => openRun(plain), /\$\.format/);
  writeFileSync(join(plain, 'run.json'), '{"format": ');
  throwsUserError(() => openRun(plain), /run\.json/, /line 1/);
});

test('resume checks that experiment.json still matches the cells of run.json', () => {
  const run = newRun();
  run.close();
  const exp = JSON.parse(readFileSync(join(run.dir, 'experiment.json'), 'utf8')) as { seeds: number[] };
  exp.seeds = [1, 2, 3];
  writeFileSync(join(run.dir, 'experiment.json'), JSON.stringify(exp));
  throwsUserError(() => openRun(run.dir), /disagree on the cells/);
});

test('checkpoints: save/load round trip with the search files, and a failed save keeps the old one', async () => {
  const run = newRun();
  const cell = run.cells[0];
  assert.equal(loadCheckpoint(cell), null);
  await saveCheckpoint(cell, { episode: 10, agentState: { w: [1, 2, 3] } }, (dir) =>
    writeFileSync(join(dir, 'weights.bin'), Buffer.from([1, 2, 3, 4])),
  );
  let ck = loadCheckpoint(cell);
  assert.equal(ck?.state.episode, 10);
  assert.deepEqual(ck?.state.agentState, { w: [1, 2, 3] });
  assert.deepEqual([...readFileSync(join(ck?.dir ?? '', 'weights.bin'))], [1, 2, 3, 4]);
  await assert.rejects(
    saveCheckpoint(cell, { episode: 20 }, (dir) => {
      writeFileSync(join(dir, 'weights.bin'), 'half');
      throw new Error('disk full');
    }),
    /disk full/,
  );
  ck = loadCheckpoint(cell);
  assert.equal(ck?.state.episode, 10);
  assert.deepEqual([...readFileSync(join(ck?.dir ?? '', 'weights.bin'))], [1, 2, 3, 4]);
  assert.deepEqual(
    readdirSync(cell.dir).filter((f) => f.startsWith('checkpoint')),
    ['checkpoint'],
  );
  run.close();
});

test('checkpoints: a crash between the two renames is recovered (new one preferred, else the old one)', async () => {
  const run = newRun();
  const cell = run.cells[0];
  const ckDir = cell.checkpointDir;
  // crash after "rename old away", before "rename new in": only .old and a complete .tmp exist
  await saveCheckpoint(cell, { episode: 10 });
  await saveCheckpoint(join(cell.dir, 'staging'), { episode: 20 });
  const { renameSync } = await import('node:fs');
  renameSync(ckDir, `${ckDir}.old-4242`);
  renameSync(join(cell.dir, 'staging'), `${ckDir}.tmp-4242`);
  assert.equal(loadCheckpoint(cell)?.state.episode, 20);
  assert.deepEqual(
    readdirSync(cell.dir).filter((f) => f.startsWith('checkpoint')),
    ['checkpoint'],
  );
  // only an old checkpoint and an incomplete new one: the old one comes back
  renameSync(ckDir, `${ckDir}.old-4243`);
  mkdirSync(`${ckDir}.tmp-4243`);
  writeFileSync(join(`${ckDir}.tmp-4243`, 'weights.bin'), 'partial');
  assert.equal(loadCheckpoint(cell)?.state.episode, 20);
  assert.deepEqual(
    readdirSync(cell.dir).filter((f) => f.startsWith('checkpoint')),
    ['checkpoint'],
  );
  // crash before any rename: the complete old checkpoint stays in place, the partial new one is dropped
  mkdirSync(`${ckDir}.tmp-4244`);
  assert.equal(loadCheckpoint(cell)?.state.episode, 20);
  assert.deepEqual(
    readdirSync(cell.dir).filter((f) => f.startsWith('checkpoint')),
    ['checkpoint'],
  );
  run.close();
});

test('cell status changes are persisted in run.json', () => {
  const run = newRun();
  const cell = run.cells[2];
  cell.setStatus('running');
  cell.setStatus('failed', { error: 'out of memory' });
  run.close();
  const reread = openRun(run.dir, { readOnly: true });
  const entry = reread.info.cells[2];
  assert.equal(entry?.status, 'failed');
  assert.equal(entry?.error, 'out of memory');
  assert.ok(entry?.startedAt && entry.finishedAt);
  assert.equal(reread.cell(cell.id).status, 'failed');
});

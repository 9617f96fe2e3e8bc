/**
 * The folders depend downwards (cli -> experiment/run/search -> envs/agents/train/hardware -> quant/models/data ->
 * backend): no two folders import each other, directly or through others.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cycleEdges, folderCycles, folderGraph } from './import-graph.js';

test('no import cycle between folders', () => {
  const edges = folderGraph();
  const cycles = folderCycles(edges);
  const detail = cycleEdges(edges).flatMap((e) => e.files.map((f) => `${f.from} imports ${f.to}`));
  assert.deepEqual(
    cycles,
    [],
    `folders that import each other: ${cycles.map((c) => c.join(' <-> ')).join('; ')}\n${detail.join('\n')}`,
  );
});

test('the folder graph sees the imports (agents import envs, the CLI imports the search loop)', () => {
  const edges = folderGraph().map((e) => `${e.from} -> ${e.to}`);
  assert.ok(edges.includes('agents -> envs'), edges.join(', '));
  assert.ok(edges.includes('src/cli -> src/search'), edges.join(', '));
});

test('the run store does not import the agent registry', () => {
  const edges = folderGraph().map((e) => `${e.from} -> ${e.to}`);
  assert.ok(!edges.includes('src/run -> agents'), edges.join(', '));
});

test('cycle detection finds a cycle through three folders', () => {
  const edge = (from: string, to: string) => ({ from, to, files: [{ from: `${from}/a.ts`, to: `${to}/b.ts` }] });
  const cycles = folderCycles([edge('a', 'b'), edge('b', 'c'), edge('c', 'a'), edge('c', 'd')]);
  assert.deepEqual(cycles, [['a', 'b', 'c']]);
});

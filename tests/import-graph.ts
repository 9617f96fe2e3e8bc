/**
 * The folder import graph of the source tree: which folder imports which, read from the .ts sources
 * (static imports, `export ... from`, and dynamic `import('...')` with a literal path; type-only imports count too,
 * since they tie the folders together just the same). A folder is `agents`, `envs` or `src/<name>`; the files
 * directly under src/ (errors.ts, log.ts, version.ts) form the folder `src`.
 *
 * Shared by tests/architecture.test.ts (no cycles between folders) and `node dist/tests/import-graph.js`,
 * which prints the graph and any cycles.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The repository root (this file runs from dist/tests/). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const ROOTS = ['src', 'agents', 'envs'];

export interface ImportEdge {
  from: string;
  to: string;
  /** The importing file and the imported file, relative to the repository root. */
  files: Array<{ from: string; to: string }>;
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The folder a repository-relative path belongs to, or undefined outside src/, agents/, envs/. */
export function folderOf(relPath: string): string | undefined {
  const parts = relPath.split(sep).join('/').split('/');
  if (parts[0] === 'agents' || parts[0] === 'envs') return parts[0];
  if (parts[0] === 'src') return parts.length > 2 ? `src/${parts[1]}` : 'src';
  return undefined;
}

/** Every folder-to-folder edge (a folder's imports of itself left out), sorted. */
export function folderGraph(root = REPO_ROOT): ImportEdge[] {
  const edges = new Map<string, ImportEdge>();
  for (const top of ROOTS) {
    for (const file of tsFiles(join(root, top))) {
      const relFrom = relative(root, file);
      const fromFolder = folderOf(relFrom);
      if (!fromFolder) continue;
      const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
      for (const imp of info.importedFiles) {
        if (!imp.fileName.startsWith('.')) continue;
        const target = resolve(dirname(file), imp.fileName.replace(/\.js$/, '.ts'));
        const relTo = relative(root, target);
        const toFolder = folderOf(relTo);
        if (!toFolder || toFolder === fromFolder) continue;
        const key = `${fromFolder} -> ${toFolder}`;
        const edge = edges.get(key) ?? { from: fromFolder, to: toFolder, files: [] };
        edge.files.push({ from: relFrom.split(sep).join('/'), to: relTo.split(sep).join('/') });
        edges.set(key, edge);
      }
    }
  }
  return [...edges.values()].sort((a, b) =>
    a.from === b.from ? a.to.localeCompare(b.to) : a.from.localeCompare(b.from),
  );
}

/** The strongly connected components with more than one folder: each is a set of folders that import each other. */
export function folderCycles(edges: ImportEdge[]): string[][] {
  const nodes = [...new Set(edges.flatMap((e) => [e.from, e.to]))].sort();
  const out = new Map<string, string[]>();
  for (const n of nodes) out.set(n, []);
  for (const e of edges) out.get(e.from)?.push(e.to);
  // Tarjan's algorithm.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const sccs: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of out.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) ?? 0, idx.get(w) ?? 0));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop();
        if (w === undefined) break;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) sccs.push(scc.sort());
    }
  };
  for (const n of nodes) if (!idx.has(n)) visit(n);
  return sccs;
}

/** The edges that lie inside a cycle, with the files that make them. */
export function cycleEdges(edges: ImportEdge[]): ImportEdge[] {
  const inCycle = new Map<string, number>();
  folderCycles(edges).forEach((scc, i) => scc.forEach((f) => inCycle.set(f, i)));
  return edges.filter((e) => inCycle.has(e.from) && inCycle.get(e.from) === inCycle.get(e.to));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const edges = folderGraph();
  const byFrom = new Map<string, string[]>();
  for (const e of edges) byFrom.set(e.from, [...(byFrom.get(e.from) ?? []), `${e.to} (${e.files.length})`]);
  for (const [from, tos] of byFrom) process.stdout.write(`${from} -> ${tos.join(', ')}\n`);
  const cycles = folderCycles(edges);
  process.stdout.write(`\n${edges.length} edges, ${cycles.length} cycle(s)\n`);
  for (const scc of cycles) process.stdout.write(`cycle: ${scc.join(' <-> ')}\n`);
  for (const e of cycleEdges(edges)) {
    for (const f of e.files) process.stdout.write(`  ${e.from} -> ${e.to}: ${f.from} imports ${f.to}\n`);
  }
}

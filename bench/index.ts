/**
 * `npm run bench -- <name> [--json]`: runs one benchmark suite from this folder.
 * Each suite is bench/<name>.ts exporting `run(argv: string[]): Promise<void>`; it prints figures
 * (and ratios against a baseline measured in the same process), with --json one JSON object on stdout.
 */
const SUITES = [
  'kernels',
  'qat',
  'qat-profile',
  'simulator',
  'search',
  'measure-cpu',
  'queue',
  'eval',
  'ptq',
  'ptq-engine',
  'memory',
  'finetune',
  'dominance',
  'search-wall',
  'drift',
  'int-eval',
] as const;

async function main(): Promise<number> {
  const [name, ...rest] = process.argv.slice(2);
  if (!name || !(SUITES as readonly string[]).includes(name)) {
    process.stderr.write(`usage: npm run bench -- <${SUITES.join('|')}> [--json]\n`);
    return 1;
  }
  const mod = (await import(`./${name}.js`)) as { run: (argv: string[]) => Promise<void> };
  await mod.run(rest);
  return 0;
}

process.exitCode = await main();

import { backendInfo } from '../backend/index.js';
import { VERSION } from '../version.js';
import type { CliCommand } from './types.js';
import { formatTable, printJson, printText } from './output.js';

/** The registered kernels as wrapped lines under the table (the table's value column stays narrow). */
function kernelLines(kernels: readonly string[], width = 100): string {
  if (kernels.length === 0) return 'kernels registered: none';
  const lines: string[] = [];
  let line = 'kernels registered:';
  for (const k of kernels) {
    const next = `${line} ${k},`;
    if (next.length > width && line.length > 2) {
      lines.push(line);
      line = `  ${k},`;
    } else line = next;
  }
  lines.push(line.replace(/,$/, ''));
  return lines.join('\n');
}

export const infoCommand: CliCommand = {
  command: 'info',
  describe: 'Show versions, the backend in use, the backends available and the kernels bitalloc registered',
  handler: async (args) => {
    const b = backendInfo();
    if (!b) throw new Error('backend not initialised');
    const info = {
      bitalloc: VERSION,
      backend: b.name,
      requestedBackend: b.requested,
      availableBackends: b.available,
      registeredKernels: b.registeredKernels,
      versions: b.versions,
      platform: `${process.platform}-${process.arch}`,
      cpus: (await import('node:os')).cpus().length,
    };
    if (args.json) {
      printJson(info);
      return;
    }
    printText(
      formatTable(
        ['item', 'value'],
        [
          ['bitalloc', VERSION],
          ['backend in use', b.name],
          ['backends available', b.available.join(', ')],
          ['tfjs', b.versions.tfjs],
          ['tfjs-node', b.versions.tfjsNode ?? 'not installed'],
          ['node', b.versions.node],
          ['platform', info.platform],
          ['cpus', info.cpus],
          ['kernels registered', b.registeredKernels.length],
        ],
      ) + `\n${kernelLines(b.registeredKernels)}`,
    );
  },
};

/**
 * Backend selection, in one place. `auto` uses tfjs-node (native TensorFlow) when it loads,
 * else the wasm backend with this project's training kernels; `cpu` (pure JS, ~90x slower
 * to train) only when asked for by name.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { createRequire } from 'node:module';
import { UserError } from '../errors.js';
import { log } from '../log.js';
import { registerWasmTrainingKernels } from './kernels/index.js';

export const BACKEND_CHOICES = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface BackendInfo {
  /** What was asked for. */
  requested: BackendChoice;
  /** The backend in use. */
  name: BackendName;
  /** Backends that can be used on this machine. */
  available: BackendName[];
  /** Kernels this project registered (or replaced) for the backend in use. */
  registeredKernels: string[];
  versions: { tfjs: string; tfjsNode: string | null; node: string };
}

const require = createRequire(import.meta.url);
let current: BackendInfo | null = null;
let tfjsNodeState: { loaded: boolean; version: string | null; error?: string } | null = null;

/** Tries to load @tensorflow/tfjs-node once; remembers the outcome. */
async function loadTfjsNode(): Promise<boolean> {
  if (tfjsNodeState) return tfjsNodeState.loaded;
  try {
    const pkgPath = require.resolve('@tensorflow/tfjs-node/package.json');
    const version = (require(pkgPath) as { version: string }).version;
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- an optional module: tsc must not resolve it
    await import('@tensorflow/tfjs-node' as string);
    tfjsNodeState = { loaded: true, version };
  } catch (e) {
    tfjsNodeState = { loaded: false, version: null, error: e instanceof Error ? e.message.split('\n')[0] : String(e) };
  }
  return tfjsNodeState.loaded;
}

export function tfjsNodeInstallHint(): string {
  return (
    "the 'tensorflow' backend needs @tensorflow/tfjs-node, which is not installed here. " +
    'Install it with `npm install @tensorflow/tfjs-node@4.22.0` (its install step downloads libtensorflow, ' +
    'so it needs internet access), or use --backend wasm (the default when tfjs-node is absent)'
  );
}

/** Selects and initialises the backend. Safe to call again: re-selects when the choice differs. */
export async function initBackend(requested: BackendChoice = 'auto'): Promise<BackendInfo> {
  if (!(BACKEND_CHOICES as readonly string[]).includes(requested)) {
    throw new UserError(`unknown backend '${String(requested)}'`, {
      field: '--backend',
      expected: BACKEND_CHOICES.join('|'),
    });
  }
  if (current && current.requested === requested) return current;
  const nodeOk =
    requested === 'auto' || requested === 'tensorflow' ? await loadTfjsNode() : (tfjsNodeState?.loaded ?? false);
  if (requested === 'tensorflow' && !nodeOk) {
    throw new UserError(tfjsNodeInstallHint(), { field: '--backend' });
  }
  const name: BackendName = requested === 'auto' ? (nodeOk ? 'tensorflow' : 'wasm') : requested;
  let registeredKernels: string[] = [];
  if (name === 'wasm') registeredKernels = registerWasmTrainingKernels();
  const ok = await tf.setBackend(name);
  if (!ok) throw new UserError(`the ${name} backend failed to initialise`, { field: '--backend' });
  await tf.ready();
  const available: BackendName[] = [];
  if (nodeOk) available.push('tensorflow');
  available.push('wasm', 'cpu');
  current = {
    requested,
    name,
    available,
    registeredKernels,
    versions: { tfjs: tf.version.tfjs, tfjsNode: tfjsNodeState?.version ?? null, node: process.versions.node },
  };
  log.debug(`backend: ${name} (requested ${requested}; available ${available.join(', ')})`);
  return current;
}

/** The backend in use, or null before initBackend. */
export function backendInfo(): BackendInfo | null {
  return current;
}

export { tf };

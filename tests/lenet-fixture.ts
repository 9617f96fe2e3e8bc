/**
 * A LeNet-5 trained for one epoch on 4,000 MNIST digits, its cost table on bitfusion-45nm, and envs / agent
 * contexts over it: the shared set-up of the tests of agents that need a real network (sensitivity, ssps).
 */
import { initBackend } from '../src/backend/index.js';
import { loadDataset } from '../src/data/index.js';
import type { Dataset } from '../src/data/api.js';
import { buildCostTable, loadProfile, type CostTable } from '../src/hardware/index.js';
import { setLogLevel } from '../src/log.js';
import { loadModel } from '../src/models/index.js';
import type { QuantNetwork } from '../src/quant/network.js';
import { createTrainer, type Trainer } from '../src/train/trainer.js';
import { BitAllocationEnv, type StepMode } from '../envs/bit-allocation-env.js';
import type { AgentContext } from '../envs/types.js';

export const BITS = [2, 3, 4, 5, 6, 7, 8];

export interface TrainedLenet {
  dataset: Dataset;
  net: QuantNetwork;
  trainer: Trainer;
  table: CostTable;
}

export async function trainedLenet(seed: number): Promise<TrainedLenet> {
  setLogLevel('warn');
  await initBackend('wasm');
  const dataset = await loadDataset('mnist', { seed, limit: 4000 });
  const net = await loadModel('lenet5', { inputShape: dataset.inputShape, numClasses: dataset.numClasses, seed });
  const trainer = createTrainer(net, dataset, { lr: 3e-3, batchSize: 64, optimizer: 'adam', seed });
  await trainer.trainEpochs(1);
  const table = buildCostTable(loadProfile('bitfusion-45nm'), net.layers, [...BITS, 32]);
  return { dataset, net, trainer, table };
}

/** An env over the trained network whose evaluator is a constant (these tests look at allocations, not rewards). */
export function lenetEnv(
  f: TrainedLenet,
  opts: { constraints: string[]; stepMode: StepMode; pinFirstLast: boolean; seed: number },
): BitAllocationEnv {
  return new BitAllocationEnv({
    layers: f.net.layers,
    bitChoices: BITS,
    cost: (b) => f.table.costAllocation(b),
    evaluator: { reference: async () => ({ accuracy: 1, loss: 0 }), evaluate: async () => ({ accuracy: 1, loss: 0 }) },
    constraints: opts.constraints,
    stepMode: opts.stepMode,
    pinFirstLast: opts.pinFirstLast,
    seed: opts.seed,
  });
}

/** The agent context the search would hand over, with training access to the trained network. */
export function lenetContext(f: TrainedLenet, env: BitAllocationEnv, seed: number): AgentContext {
  return {
    ...env.agentContext(seed),
    training: {
      net: f.net,
      trainer: f.trainer,
      dataset: f.dataset,
      costTable: f.table,
      evalSamples: 300,
      isFeasible: (b) => env.isFeasible(b),
    },
  };
}

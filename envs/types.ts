/**
 * The MDP's contract with agents and with the search loop (Gymnasium-style).
 * The environment knows nothing about agents; agents know only spaces, observations, masks and rewards.
 */
import type { AllocationCost, CostTable } from '../src/hardware/api.js';
import type { Dataset, Split } from '../src/data/api.js';
import type { QuantizedNetwork } from '../src/quant/api.js';
import type { Trainer } from '../src/train/trainer.js';
import type { BitConfig, LayerBits, LayerInfo } from '../src/models/layer-info.js';
import type { Rng } from '../src/util/rng.js';

/** A set of valid values that can be sampled and checked for membership. */
export interface Space<T> {
  sample(rng: Rng): T;
  contains(x: T): boolean;
}

/** Result of evaluating the (quantized) network at an allocation. */
export interface AccuracyResult {
  accuracy: number;
  loss: number;
}

/**
 * Where accuracy comes from. The env never trains: the search loop plugs in an evaluator that runs K QAT
 * steps and measures validation accuracy; tests plug in a synthetic one with a known optimum.
 */
export interface AccuracyEvaluator {
  /** Accuracy and loss of the unquantized (float) network, the reference for rewards. */
  reference(): Promise<AccuracyResult>;
  evaluate(bits: BitConfig): Promise<AccuracyResult>;
}

/** What one finished episode produced (the allocation after constraint handling). */
export interface EpisodeSummary {
  /** 1-based episode number. */
  episode: number;
  /** The allocation the agent chose, before constraint handling. */
  proposedBits: BitConfig;
  /** The allocation evaluated (after HAQ-style lowering, if that mode is on). */
  bits: BitConfig;
  accuracy: number;
  loss: number;
  cost: AllocationCost;
  /** Cost relative to the reference (W8A8) network, per metric. */
  relativeCost: { latency: number; energy: number; size: number; peakMemory: number };
  feasible: boolean;
  reward: number;
  /**
   * False when the allocation was not evaluated (the `reject` constraint mode refuses infeasible
   * allocations); accuracy and loss are then NaN. Absent means evaluated.
   */
  evaluated?: boolean;
  /** The penalty subtracted from the reward (`penalty` constraint mode), else 0. */
  penalty?: number;
}

/**
 * How an episode walks the layers: `joint` one step per layer choosing a (wBits, aBits) pair,
 * `tied` one step per layer choosing one width for both, `two-step` two steps per layer (weights, then
 * activations, as HAQ does; experiment files and flags still accept its older spelling `haq`).
 */
export type StepMode = 'joint' | 'tied' | 'two-step';

export interface Transition {
  observation: Float32Array;
  action: number;
  reward: number;
  nextObservation: Float32Array;
  done: boolean;
  mask: Uint8Array | null;
}

/** What an agent may know about the problem when it is set up. */
export interface AgentContext {
  layers: readonly LayerInfo[];
  /** The env's discrete action choices at each step (see BitAllocationEnv.actionChoices). */
  numActions: number;
  observationSize: number;
  /** Steps per episode (layers, or 2 x layers in the two-step mode). */
  stepsPerEpisode: number;
  /** Bit-widths allowed. */
  bitChoices: readonly number[];
  /** Cost of a whole allocation from the simulator's tables (cheap), pinned layers as the env sets them. */
  costOf(bits: BitConfig): AllocationCost;
  /** True when an allocation meets every constraint and the device's limits, as the env would judge it. */
  isFeasible(bits: BitConfig): boolean;
  seed: number;
  /** The budgets resolved to absolute limits (ms, uJ, bytes), as the env checks them (BitAllocationEnv sets it). */
  constraints?: readonly { metric: 'latency' | 'energy' | 'size' | 'peakMemory'; limit: number }[];
  /** How steps map to layers (BitAllocationEnv sets it). */
  stepMode?: StepMode;
  /**
   * What each action index sets: a (wBits, aBits) pair; in `two-step` step mode wBits = aBits and the
   * step's side (weights or activations) decides which one applies (BitAllocationEnv sets it).
   */
  actionChoices?: readonly LayerBits[];
  /**
   * Present when the search runs on a real network: what agents that learn from data or gradients need
   * (data-free / real-data sensitivity, differentiable search). Absent on synthetic evaluators.
   */
  training?: TrainingAccess;
}

/** The real network, its trainer and data, handed to agents that need more than rewards. */
export interface TrainingAccess {
  net: QuantizedNetwork;
  trainer: Trainer;
  dataset: Dataset;
  /** The simulator's table for this model and profile. */
  costTable: CostTable;
  /** Validation samples per evaluation. */
  evalSamples: number;
  /** Constraints resolved to absolute limits, as the env checks them. */
  isFeasible(bits: BitConfig): boolean;
  /**
   * Inference on a split at the network's current bits through the search's forward-pass engine
   * (onnxruntime when it is the engine); absent: tfjs (evaluateModel). Accuracy and mean cross-entropy.
   */
  evaluate?(split: Split): Promise<{ accuracy: number; loss: number }>;
}

interface AgentBase {
  readonly name: string;
  setup(ctx: AgentContext): void | Promise<void>;
  /** Called after every episode with its outcome (reward included). */
  endEpisode(summary: EpisodeSummary): void | Promise<void>;
  /** JSON-serialisable state (hyperparameters, weights, RNG state) for checkpoints. */
  getState(): unknown;
  setState(state: unknown): void | Promise<void>;
  dispose?(): void;
}

/** An agent that acts layer by layer through env.step (REINFORCE, PPO, DDPG, random, ...). */
export interface StepAgent extends AgentBase {
  readonly kind: 'step';
  /** Index into the action space; `mask[i] = 0` marks choices the agent must not take (when it supports masks). */
  act(observation: Float32Array, mask: Uint8Array | null, explore: boolean): number | Promise<number>;
  observe(t: Transition): void;
}

/** An agent that proposes whole allocations (MH sampler, evolution, sensitivity, uniform, ...). */
export interface AllocationAgent extends AgentBase {
  readonly kind: 'allocation';
  propose(): BitConfig | Promise<BitConfig>;
  /** True when the agent has nothing more to propose (e.g. uniform has tried every width). */
  exhausted?(): boolean;
}

export type Agent = StepAgent | AllocationAgent;

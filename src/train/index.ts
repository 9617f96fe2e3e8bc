/**
 * Training: the QAT trainer / evaluator, per-dataset defaults and checkpoints on disk.
 */
export {
  calibrateNetwork,
  createTrainer,
  evaluateModel,
  makeOptimizer,
  outputsProbabilities,
  OPTIMIZERS,
  type EpochOptions,
  type EpochProgress,
  type EvalResult,
  type LrSchedule,
  type OptimizerName,
  type SplitName,
  type TrainableNetwork,
  type Trainer,
  type TrainerOptions,
  type TrainStats,
} from './trainer.js';
export { TRAINING_DEFAULTS, trainingDefaults, type TrainingDefaults } from './defaults.js';
export {
  RUN_JSON,
  loadCheckpoint,
  namedBits,
  runVersions,
  saveCheckpoint,
  type LoadedCheckpoint,
  type NetworkMeta,
  type RunRecord,
  type RunVersions,
} from './checkpoint.js';

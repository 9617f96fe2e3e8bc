/**
 * Training defaults per dataset (float training from scratch). QAT that starts from a checkpoint is
 * a fine-tune: a quarter of the epochs (at least 1) at a quarter of the learning rate.
 * Every run uses Adam and a cosine decay of the learning rate over the run unless told otherwise.
 */
import type { OptimizerName } from './trainer.js';

export interface TrainingDefaults {
  epochs: number;
  batchSize: number;
  lr: number;
  optimizer: OptimizerName;
}

export const TRAINING_DEFAULTS: Readonly<Record<string, TrainingDefaults>> = {
  // 8,000 training digits: LeNet-5 reaches ~98% test accuracy in 8 epochs.
  mnist: { epochs: 8, batchSize: 64, lr: 3e-3, optimizer: 'adam' },
  // 54,000 training images (use --limit for quick runs). cnn-small (BatchNorm) on 10,000 of them
  // for 3 epochs: 84.8% test accuracy at lr 1e-2 against 80.9% at 2e-3.
  'fashion-mnist': { epochs: 3, batchSize: 64, lr: 1e-2, optimizer: 'adam' },
  cifar10: { epochs: 10, batchSize: 64, lr: 2e-3, optimizer: 'adam' },
  idx: { epochs: 5, batchSize: 64, lr: 2e-3, optimizer: 'adam' },
};

const FALLBACK: TrainingDefaults = { epochs: 5, batchSize: 64, lr: 2e-3, optimizer: 'adam' };

/** Defaults for a dataset; `fineTune` for QAT starting from trained weights. */
export function trainingDefaults(dataset: string, fineTune = false): TrainingDefaults {
  const d = TRAINING_DEFAULTS[dataset] ?? FALLBACK;
  return fineTune ? { ...d, epochs: Math.max(1, Math.round(d.epochs / 4)), lr: d.lr / 4 } : { ...d };
}

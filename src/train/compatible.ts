/**
 * Model against data, before any work: the network must take the dataset's samples (input shape,
 * channels) and predict its classes (label-free data takes the network's classes). Shared by
 * train, eval, search and run so they all give the same messages.
 */
import { existsSync } from 'node:fs';
import type { Dataset } from '../data/api.js';
import { UserError } from '../errors.js';
import { readModelArtifacts } from '../quant/model-files.js';
import type { QuantizedNetwork } from '../quant/api.js';

/** Checks that the network takes the dataset's samples and predicts its classes. */
export function checkCompatible(net: QuantizedNetwork, ds: Dataset, what: string): void {
  const inShape = net.model.inputs[0]?.shape.slice(1) ?? [];
  const outShape = net.model.outputs[0]?.shape ?? [];
  if (inShape.join('x') !== ds.inputShape.join('x')) {
    throw new UserError(
      `${what} takes inputs of ${inShape.join('x')}, dataset ${ds.name} has ${ds.inputShape.join('x')}`,
      {
        field: '--dataset',
        expected: `a dataset of ${inShape.join('x')} samples`,
      },
    );
  }
  const classes = outShape[outShape.length - 1];
  if (ds.labeled !== false && classes !== ds.numClasses) {
    throw new UserError(`${what} predicts ${String(classes)} classes, dataset ${ds.name} has ${ds.numClasses}`, {
      field: '--dataset',
      expected: `a dataset with ${String(classes)} classes`,
    });
  }
}

/** [h, w, c] of a model file's input, or null (not a file, or no fixed input shape). */
export function modelFileInputShape(spec: string | undefined): number[] | null {
  if (spec === undefined || !existsSync(spec)) return null;
  try {
    const { json } = readModelArtifacts(spec);
    const topo = json['modelTopology'] as Record<string, unknown>;
    const root = (topo['model_config'] ?? topo) as {
      config?: { layers?: { config?: Record<string, unknown> }[] } | { config?: Record<string, unknown> }[];
    };
    const layers = Array.isArray(root.config) ? root.config : root.config?.layers;
    const first = layers?.[0]?.config;
    const shape = (first?.['batch_input_shape'] ?? first?.['batchInputShape']) as (number | null)[] | undefined;
    return Array.isArray(shape) && shape.length === 4 && shape.slice(1).every((v) => typeof v === 'number')
      ? (shape.slice(1) as number[])
      : null;
  } catch {
    return null;
  }
}

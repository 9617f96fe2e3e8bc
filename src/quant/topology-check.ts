/** Checks a TF.js layers topology before tfjs sees it, so that unsupported layers get a clear error. */
import { UserError } from '../errors.js';
import { ACTIVATIONS, QConv2D, QDense, QDepthwiseConv2D } from './layers.js';

/** Layer classes a user model may contain. */
export const SUPPORTED_LAYERS: readonly string[] = [
  'InputLayer',
  'Conv2D',
  'DepthwiseConv2D',
  'Dense',
  'BatchNormalization',
  'Activation',
  'ReLU',
  'Softmax',
  'ZeroPadding2D',
  'Add',
  'Concatenate',
  'Dropout',
  'MaxPooling2D',
  'AveragePooling2D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling2D',
  'Flatten',
  'Reshape',
  QConv2D.className,
  QDepthwiseConv2D.className,
  QDense.className,
];

export const QUANTIZABLE = new Set(['Conv2D', 'DepthwiseConv2D', 'Dense']);

interface RawLayer {
  class_name?: unknown;
  className?: unknown;
  config?: unknown;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Checks every layer class before tfjs sees the topology, for a clear error. */
export function checkTopology(topology: Record<string, unknown>, file: string): void {
  const root = isObject(topology['model_config']) ? topology['model_config'] : topology;
  const rootPath = root === topology ? '$.modelTopology' : '$.modelTopology.model_config';
  const cls = root['class_name'] ?? root['className'];
  if (typeof cls !== 'string')
    throw new UserError('modelTopology has no class_name', {
      file,
      field: `${rootPath}.class_name`,
      expected: 'Sequential, Model or Functional',
    });
  if (!['Sequential', 'Model', 'Functional'].includes(cls)) {
    throw new UserError(`unsupported model class '${cls}'`, {
      file,
      field: `${rootPath}.class_name`,
      expected: 'Sequential, Model or Functional',
    });
  }
  const config = root['config'];
  const layers = Array.isArray(config) ? config : isObject(config) ? config['layers'] : undefined;
  if (!Array.isArray(layers))
    throw new UserError('modelTopology has no layer list', { file, field: `${rootPath}.config.layers` });
  layers.forEach((l: unknown, i) => {
    const raw = (isObject(l) ? l : {}) as RawLayer;
    const name = isObject(raw.config) && typeof raw.config['name'] === 'string' ? raw.config['name'] : `#${i}`;
    const c =
      typeof raw.class_name === 'string' ? raw.class_name : typeof raw.className === 'string' ? raw.className : '?';
    if (!SUPPORTED_LAYERS.includes(c)) {
      throw new UserError(`layer '${name}' has unsupported class '${c}'`, {
        file,
        field: `${rootPath}.config.layers[${i}]`,
        expected: `one of ${SUPPORTED_LAYERS.join(', ')}`,
      });
    }
    if (QUANTIZABLE.has(c) && isObject(raw.config)) {
      const act = raw.config['activation'];
      if (typeof act === 'string' && !(act in ACTIVATIONS)) {
        throw new UserError(`layer '${name}' (${c}) has unsupported activation '${act}'`, {
          file,
          field: `${rootPath}.config.layers[${i}].config.activation`,
          expected: Object.keys(ACTIVATIONS).join(', '),
        });
      }
      const fmt = raw.config['data_format'] ?? raw.config['dataFormat'];
      if (fmt !== undefined && fmt !== null && fmt !== 'channels_last' && fmt !== 'channelsLast') {
        throw new UserError(`layer '${name}' (${c}) uses data_format '${String(fmt)}'`, {
          file,
          field: `${rootPath}.config.layers[${i}].config.data_format`,
          expected: 'channels_last',
        });
      }
    }
  });
}

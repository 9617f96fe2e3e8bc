/**
 * The compute models a profile can choose (`compute.model`), by name. Adding a model: write
 * <name>.ts exporting a factory, add it to the schema and to this table.
 */
import type { ComputeModelName, ComputeSpec } from '../profile-types.js';
import { bitFusionModel } from './bit-fusion.js';
import { bitSerialModel } from './bit-serial.js';
import { expressionModel } from './expression.js';
import { lookupModel } from './lookup.js';
import { modesModel } from './modes.js';
import { systolicModel } from './systolic.js';
import type { ComputeContext, ComputeModel } from './types.js';

type Factory = (spec: ComputeSpec, ctx: ComputeContext) => ComputeModel;

const FACTORIES: Readonly<Record<ComputeModelName, Factory>> = {
  'bit-serial': (s) => bitSerialModel(s as Extract<ComputeSpec, { model: 'bit-serial' }>),
  'bit-fusion': (s) => bitFusionModel(s as Extract<ComputeSpec, { model: 'bit-fusion' }>),
  modes: (s, c) => modesModel(s as Extract<ComputeSpec, { model: 'modes' }>, c),
  systolic: (s, c) => systolicModel(s as Extract<ComputeSpec, { model: 'systolic' }>, c),
  expression: (s, c) => expressionModel(s as Extract<ComputeSpec, { model: 'expression' }>, c),
  lookup: (s, c) => lookupModel(s as Extract<ComputeSpec, { model: 'lookup' }>, c),
};

/** Builds the compute model a validated profile names; problems found while compiling go to ctx.problems. */
export function createComputeModel(spec: ComputeSpec, ctx: ComputeContext): ComputeModel {
  return FACTORIES[spec.model](spec, ctx);
}

export type { ComputeModel, ComputeResult, LayerGeometry } from './types.js';

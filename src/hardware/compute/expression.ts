/**
 * Compute cycles and energy as mathjs expressions over a layer's variables, e.g.
 *   "cycles": "ceil(macs / 256) * ceil(wBits / 2) * ceil(aBits / 2)"
 * Expressions are parsed with mathjs and compiled once at load into plain closures (numbers only):
 * a parse error, an unknown variable or function, or a construct other than arithmetic, comparisons,
 * `? :` and the listed functions is a load error naming the field.
 */
import { createRequire } from 'node:module';
import type { MathNode } from 'mathjs';

type MathParse = (source: string) => MathNode;
let mathParse: MathParse | null = null;

/** mathjs loads on the first expression profile (about a second of start-up that other commands need not pay). */
function parse(source: string): MathNode {
  mathParse ??= (createRequire(import.meta.url)('mathjs') as { parse: MathParse }).parse;
  return mathParse(source);
}
import { UserError } from '../../errors.js';
import type { ExpressionSpec } from '../profile-types.js';
import { activationBytes, weightStorageBytes } from '../storage.js';
import {
  resetResult,
  type ComputeContext,
  type ComputeModel,
  type ComputeResult,
  type LayerGeometry,
} from './types.js';

/** The variables an expression can use, with their meaning (per batch unless said). */
export const EXPRESSION_VARIABLES: Readonly<Record<string, string>> = {
  macs: 'multiply-accumulates of the layer (x batch)',
  params: 'weight count (without bias)',
  biasParams: 'bias and folded BatchNorm parameters',
  wBits: 'weight bits',
  aBits: 'activation bits',
  batch: 'batch size of the profile',
  inElements: 'input activation elements (x batch)',
  outElements: 'output activation elements (x batch)',
  liveElements: 'elements of residual tensors alive during the layer (x batch)',
  inBytes: 'input activation bytes at aBits',
  outBytes: 'output activation bytes at aBits',
  weightBytes: 'weight bytes at wBits (with scales and bias)',
  kernel: 'kernel area kh*kw (dense: 1)',
  kernelH: 'kernel height',
  kernelW: 'kernel width',
  stride: 'largest stride (dense: 0)',
  strideH: 'vertical stride',
  strideW: 'horizontal stride',
  inChannels: 'input channels (dense: input features)',
  outChannels: 'output channels (dense: output features)',
  inH: 'input height',
  inW: 'input width',
  outH: 'output height',
  outW: 'output width',
  isConv: '1 for a convolution, else 0',
  isDepthwise: '1 for a depthwise convolution, else 0',
  isDense: '1 for a dense layer, else 0',
  layerIndex: 'position among the quantizable layers (0-based)',
  clockMHz: 'clock of the profile',
  pi: 'π',
  e: "Euler's number",
};

type Scope = Record<string, number>;
type Fn = (s: Scope) => number;

const FUNCTIONS: Readonly<Record<string, (...args: number[]) => number>> = {
  abs: Math.abs,
  ceil: Math.ceil,
  floor: Math.floor,
  round: Math.round,
  fix: Math.trunc,
  sign: Math.sign,
  sqrt: Math.sqrt,
  cbrt: Math.cbrt,
  exp: Math.exp,
  log: (x: number, base?: number) => (base === undefined ? Math.log(x) : Math.log(x) / Math.log(base)),
  log2: Math.log2,
  log10: Math.log10,
  pow: Math.pow,
  max: Math.max,
  min: Math.min,
  mod: (x: number, y: number) => (y === 0 ? x : x - y * Math.floor(x / y)),
};

const BINARY: Readonly<Record<string, (x: number, y: number) => number>> = {
  add: (x, y) => x + y,
  subtract: (x, y) => x - y,
  multiply: (x, y) => x * y,
  divide: (x, y) => x / y,
  pow: (x, y) => Math.pow(x, y),
  mod: FUNCTIONS.mod,
  larger: (x, y) => (x > y ? 1 : 0),
  smaller: (x, y) => (x < y ? 1 : 0),
  largerEq: (x, y) => (x >= y ? 1 : 0),
  smallerEq: (x, y) => (x <= y ? 1 : 0),
  equal: (x, y) => (x === y ? 1 : 0),
  unequal: (x, y) => (x !== y ? 1 : 0),
  and: (x, y) => (x && y ? 1 : 0),
  or: (x, y) => (x || y ? 1 : 0),
};

const UNARY: Readonly<Record<string, (x: number) => number>> = {
  unaryMinus: (x) => -x,
  unaryPlus: (x) => x,
  not: (x) => (x ? 0 : 1),
};

class ExpressionError extends Error {}

interface NodeLike {
  type: string;
  value?: unknown;
  name?: string;
  fn?: unknown;
  op?: string;
  args?: MathNode[];
  content?: MathNode;
  condition?: MathNode;
  trueExpr?: MathNode;
  falseExpr?: MathNode;
}

/** Compiles a parsed expression into a closure; throws ExpressionError for anything not allowed. */
function compileNode(node: MathNode, known: ReadonlySet<string>, constants: Readonly<Record<string, number>>): Fn {
  const n = node as unknown as NodeLike;
  switch (n.type) {
    case 'ConstantNode': {
      if (typeof n.value !== 'number')
        throw new ExpressionError(`only numbers are allowed, got ${JSON.stringify(n.value)}`);
      const v = n.value;
      return () => v;
    }
    case 'SymbolNode': {
      const name = n.name as string;
      if (name in constants) {
        const v = constants[name];
        return () => v;
      }
      if (name === 'pi') return () => Math.PI;
      if (name === 'e') return () => Math.E;
      if (!known.has(name)) {
        throw new ExpressionError(
          `unknown variable '${name}' (known: ${[...known, ...Object.keys(constants)].join(', ')})`,
        );
      }
      return (s) => s[name];
    }
    case 'ParenthesisNode':
      return compileNode(n.content as MathNode, known, constants);
    case 'ConditionalNode': {
      const c = compileNode(n.condition as MathNode, known, constants);
      const t = compileNode(n.trueExpr as MathNode, known, constants);
      const f = compileNode(n.falseExpr as MathNode, known, constants);
      return (s) => (c(s) ? t(s) : f(s));
    }
    case 'OperatorNode': {
      const fnName = n.fn as string;
      const args = (n.args ?? []).map((a) => compileNode(a, known, constants));
      if (args.length === 1 && UNARY[fnName]) {
        const op = UNARY[fnName];
        const a0 = args[0];
        return (s) => op(a0(s));
      }
      if (args.length === 2 && BINARY[fnName]) {
        const op = BINARY[fnName];
        const a0 = args[0];
        const a1 = args[1];
        return (s) => op(a0(s), a1(s));
      }
      throw new ExpressionError(
        `operator '${n.op ?? fnName}' is not supported (use + - * / ^ mod, comparisons, and, or, not, ? :)`,
      );
    }
    case 'FunctionNode': {
      const fnNode = n.fn as NodeLike;
      const name = fnNode.type === 'SymbolNode' ? (fnNode.name as string) : '';
      const f = FUNCTIONS[name];
      if (!f)
        throw new ExpressionError(
          `unknown function '${name || 'expression'}' (known: ${Object.keys(FUNCTIONS).join(', ')})`,
        );
      const args = (n.args ?? []).map((a) => compileNode(a, known, constants));
      if (args.length === 0) throw new ExpressionError(`function '${name}' needs arguments`);
      if (args.length === 1) {
        const a0 = args[0];
        return (s) => f(a0(s));
      }
      if (args.length === 2) {
        const a0 = args[0];
        const a1 = args[1];
        return (s) => f(a0(s), a1(s));
      }
      return (s) => f(...args.map((a) => a(s)));
    }
    default:
      throw new ExpressionError(
        `${n.type.replace(/Node$/, '').toLowerCase()} expressions are not allowed; write one arithmetic expression`,
      );
  }
}

export interface CompiledExpression {
  readonly source: string;
  evaluate(scope: Readonly<Record<string, number>>): number;
}

/**
 * Parses and compiles `source`; returns the compiled expression, or pushes a problem naming `path`
 * and returns null.
 */
export function compileExpression(
  source: string,
  path: string,
  constants: Readonly<Record<string, number>>,
  problems: string[],
): CompiledExpression | null {
  let node: MathNode;
  try {
    node = parse(source);
  } catch (e) {
    problems.push(`${path}: cannot parse ${JSON.stringify(source)}: ${e instanceof Error ? e.message : String(e)}`);
    return null;
  }
  try {
    const fn = compileNode(node, new Set(Object.keys(EXPRESSION_VARIABLES)), constants);
    return { source, evaluate: fn };
  } catch (e) {
    if (e instanceof ExpressionError) {
      problems.push(`${path}: ${e.message}`);
      return null;
    }
    throw e;
  }
}

export function expressionModel(spec: ExpressionSpec, ctx: ComputeContext): ComputeModel {
  const constants = spec.constants ?? {};
  for (const name of Object.keys(constants)) {
    if (name in EXPRESSION_VARIABLES)
      ctx.problems.push(`$.compute.constants.${name}: '${name}' is a layer variable; choose another name`);
  }
  const cycles = compileExpression(spec.cycles, '$.compute.cycles', constants, ctx.problems);
  const energy = compileExpression(spec.energyPJ, '$.compute.energyPJ', constants, ctx.problems);
  const scope: Record<string, number> = Object.fromEntries(Object.keys(EXPRESSION_VARIABLES).map((k) => [k, 0]));
  const clockMHz = ctx.spec.clockMHz;
  return {
    name: 'expression',
    userSupplied: true,
    evaluate(g: LayerGeometry, wBits: number, aBits: number, out: ComputeResult): void {
      resetResult(out, wBits, aBits);
      if (!cycles || !energy) throw new Error('expression profile used although it did not compile');
      const l = g.layer;
      scope.macs = g.macs;
      scope.params = l.params;
      scope.biasParams = l.biasParams;
      scope.wBits = wBits;
      scope.aBits = aBits;
      scope.batch = g.batch;
      scope.inElements = g.inElements;
      scope.outElements = g.outElements;
      scope.liveElements = g.liveElements;
      scope.inBytes = activationBytes(g.inElements, aBits);
      scope.outBytes = activationBytes(g.outElements, aBits);
      scope.weightBytes = g.weightBytesAt[wBits] ?? weightStorageBytes(l, wBits);
      scope.kernel = l.kernel[0] * l.kernel[1];
      scope.kernelH = l.kernel[0];
      scope.kernelW = l.kernel[1];
      scope.stride = Math.max(l.stride[0], l.stride[1]);
      scope.strideH = l.stride[0];
      scope.strideW = l.stride[1];
      scope.inChannels = l.inChannels;
      scope.outChannels = l.outChannels;
      scope.inH = l.inSize[0];
      scope.inW = l.inSize[1];
      scope.outH = l.outSize[0];
      scope.outW = l.outSize[1];
      scope.isConv = l.kind === 'conv' ? 1 : 0;
      scope.isDepthwise = l.kind === 'depthwise' ? 1 : 0;
      scope.isDense = l.kind === 'dense' ? 1 : 0;
      scope.layerIndex = l.index;
      scope.clockMHz = clockMHz;
      out.cycles = checked(cycles, scope, '$.compute.cycles', l.name, wBits, aBits, ctx.file);
      out.energyPJ = checked(energy, scope, '$.compute.energyPJ', l.name, wBits, aBits, ctx.file);
    },
    summary: () => `expression: cycles = ${spec.cycles}; energyPJ = ${spec.energyPJ}`,
    supportedBits: () => null,
  };
}

function checked(
  e: CompiledExpression,
  scope: Record<string, number>,
  field: string,
  layer: string,
  w: number,
  a: number,
  file: string,
): number {
  const v = e.evaluate(scope);
  if (!Number.isFinite(v) || v < 0) {
    throw new UserError(`evaluates to ${v} for layer '${layer}' at W${w}A${a}`, {
      file,
      field,
      expected: 'a finite number >= 0 for every layer and bit-width',
    });
  }
  return v;
}

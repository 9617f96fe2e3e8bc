/**
 * ONNX files as plain objects: decoding and encoding ModelProto with protobufjs over the ONNX
 * project's own schema (onnx-proto.ts), and the tensor helpers both directions need.
 */
import protobuf from 'protobufjs';
import { ONNX_PROTO } from './onnx-proto.js';

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10, DOUBLE: 11 } as const;

/** AttributeProto.AttributeType values used here. */
export const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

export interface TensorProto {
  dims?: number[];
  dataType?: number;
  name?: string;
  rawData?: Uint8Array;
  floatData?: number[];
  int32Data?: number[];
  int64Data?: number[];
  doubleData?: number[];
  dataLocation?: number;
}

export interface AttributeProto {
  name: string;
  type?: number;
  f?: number;
  i?: number;
  s?: Uint8Array;
  t?: TensorProto;
  floats?: number[];
  ints?: number[];
  strings?: Uint8Array[];
}

export interface NodeProto {
  input?: string[];
  output?: string[];
  name?: string;
  opType: string;
  domain?: string;
  attribute?: AttributeProto[];
}

export interface Dimension {
  dimValue?: number;
  dimParam?: string;
}

export interface ValueInfoProto {
  name: string;
  type?: { tensorType?: { elemType?: number; shape?: { dim?: Dimension[] } } };
}

export interface GraphProto {
  node?: NodeProto[];
  name?: string;
  initializer?: TensorProto[];
  input?: ValueInfoProto[];
  output?: ValueInfoProto[];
  valueInfo?: ValueInfoProto[];
}

export interface OperatorSetId {
  domain?: string;
  version?: number;
}

export interface ModelProto {
  irVersion?: number;
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: number;
  docString?: string;
  graph?: GraphProto;
  opsetImport?: OperatorSetId[];
  metadataProps?: { key: string; value: string }[];
}

let modelType: protobuf.Type | null = null;

function model(): protobuf.Type {
  if (!modelType) modelType = protobuf.parse(ONNX_PROTO, { keepCase: false }).root.lookupType('onnx.ModelProto');
  return modelType;
}

/** Decodes an ONNX file's bytes (throws protobufjs's error on a corrupt file). */
export function decodeModel(bytes: Uint8Array): ModelProto {
  const t = model();
  const msg = t.decode(bytes);
  return t.toObject(msg, { longs: Number, enums: Number, bytes: Uint8Array, defaults: false, arrays: true });
}

/** Encodes a model to ONNX bytes. */
export function encodeModel(m: ModelProto): Uint8Array {
  const t = model();
  const err = t.verify(m);
  if (err) throw new Error(`invalid ONNX model: ${err}`);
  return t.encode(t.fromObject(m)).finish();
}

/** A tensor's values as numbers (float, int and bool types) and its dims. */
export function tensorValues(t: TensorProto): { dims: number[]; data: Float64Array | Float32Array } {
  const dims = (t.dims ?? []).map(Number);
  const n = dims.reduce((a, b) => a * b, 1);
  const type = t.dataType ?? DataType.FLOAT;
  if (t.dataLocation === 1)
    throw new Error(
      `tensor '${t.name}' keeps its data in an external file (not supported: save the model with its weights inside)`,
    );
  const raw = t.rawData && t.rawData.byteLength > 0 ? t.rawData : null;
  if (raw) {
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    if (type === DataType.FLOAT) {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      return { dims, data: out };
    }
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      if (type === DataType.INT64) out[i] = Number(view.getBigInt64(8 * i, true));
      else if (type === DataType.INT32) out[i] = view.getInt32(4 * i, true);
      else if (type === DataType.DOUBLE) out[i] = view.getFloat64(8 * i, true);
      else if (type === DataType.INT8) out[i] = view.getInt8(i);
      else if (type === DataType.UINT8 || type === DataType.BOOL) out[i] = view.getUint8(i);
      else
        throw new Error(
          `tensor '${t.name}' has data type ${type} (supported: float, double, int8, uint8, int32, int64, bool)`,
        );
    }
    return { dims, data: out };
  }
  if (type === DataType.FLOAT) return { dims, data: Float32Array.from(t.floatData ?? []) };
  if (type === DataType.INT64) return { dims, data: Float64Array.from(t.int64Data ?? []) };
  if (type === DataType.DOUBLE) return { dims, data: Float64Array.from(t.doubleData ?? []) };
  return { dims, data: Float64Array.from(t.int32Data ?? []) };
}

/** A float32 initializer. */
export function floatTensor(name: string, dims: number[], data: ArrayLike<number>): TensorProto {
  const f = Float32Array.from(data);
  return { name, dims, dataType: DataType.FLOAT, rawData: new Uint8Array(f.buffer) };
}

/** An int8 / uint8 / int32 / int64 initializer. */
export function intTensor(name: string, dims: number[], data: ArrayLike<number>, dataType: number): TensorProto {
  if (dataType === DataType.INT8) return { name, dims, dataType, rawData: new Uint8Array(Int8Array.from(data).buffer) };
  if (dataType === DataType.UINT8 || dataType === DataType.BOOL)
    return { name, dims, dataType, rawData: Uint8Array.from(data) };
  if (dataType === DataType.INT32)
    return { name, dims, dataType, rawData: new Uint8Array(Int32Array.from(data).buffer) };
  return {
    name,
    dims,
    dataType,
    rawData: new Uint8Array(BigInt64Array.from(Array.from(data, (v) => BigInt(v))).buffer),
  };
}

export function attrInt(name: string, i: number): AttributeProto {
  return { name, type: AttrType.INT, i };
}

export function attrFloat(name: string, f: number): AttributeProto {
  return { name, type: AttrType.FLOAT, f };
}

export function attrInts(name: string, ints: number[]): AttributeProto {
  return { name, type: AttrType.INTS, ints };
}

export function attrString(name: string, s: string): AttributeProto {
  return { name, type: AttrType.STRING, s: new TextEncoder().encode(s) };
}

/** A node's attributes by name. */
export function attributes(node: NodeProto): Map<string, AttributeProto> {
  return new Map((node.attribute ?? []).map((a) => [a.name, a] as const));
}

export function attrText(a: AttributeProto | undefined): string | undefined {
  return a?.s ? new TextDecoder().decode(a.s) : undefined;
}

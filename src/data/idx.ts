/**
 * The IDX format (the MNIST / Fashion-MNIST file format): a 4-byte magic (0, 0, type, ndims),
 * ndims big-endian uint32 dimensions, then the values in row-major order, big-endian.
 */
import { UserError } from '../errors.js';
import { readMaybeGzip } from './files.js';

/** IDX element types: code -> [name, bytes per element]. */
const IDX_TYPES: Record<number, [string, number]> = {
  0x08: ['ubyte', 1],
  0x09: ['sbyte', 1],
  0x0b: ['int16', 2],
  0x0c: ['int32', 4],
  0x0d: ['float32', 4],
  0x0e: ['float64', 8],
};

export interface IdxArray {
  /** The file it came from. */
  file: string;
  type: 'ubyte' | 'sbyte' | 'int16' | 'int32' | 'float32' | 'float64';
  dims: number[];
  /** The values: the raw bytes for ubyte (no copy), decoded numbers otherwise. */
  data: Uint8Array | Float64Array;
}

/** Parses IDX bytes (already gunzipped). `file` and `hint` go into the error messages. */
export function parseIdx(buf: Uint8Array, file: string, hint: string): IdxArray {
  const expectedMagic = 'magic 0x0000TTNN (two zero bytes, a type code 0x08..0x0E, the number of dimensions)';
  if (buf.length < 4) {
    throw new UserError(`is too short to be an IDX file (${buf.length} bytes)`, {
      file,
      expected: `${expectedMagic}; ${hint}`,
    });
  }
  const typeCode = buf[2];
  const ndims = buf[3];
  const typeInfo = IDX_TYPES[typeCode];
  if (buf[0] !== 0 || buf[1] !== 0 || !typeInfo || ndims < 1) {
    const magic = Array.from(buf.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join('');
    throw new UserError(`wrong magic number 0x${magic}: not an IDX file`, {
      file,
      expected: `${expectedMagic}; ${hint}`,
    });
  }
  const header = 4 + 4 * ndims;
  if (buf.length < header) {
    throw new UserError(`is truncated: the header needs ${header} bytes, the file has ${buf.length}`, {
      file,
      expected: hint,
    });
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const [typeName, bytes] = typeInfo;
  const count = dims.reduce((a, b) => a * b, 1);
  const expectedBytes = header + count * bytes;
  if (buf.length !== expectedBytes) {
    const what = buf.length < expectedBytes ? 'is truncated' : 'has trailing bytes';
    throw new UserError(
      `${what}: dimensions [${dims.join(', ')}] of ${typeName} need ${expectedBytes} bytes, the file has ${buf.length}`,
      { file, expected: `an intact IDX file; ${hint}` },
    );
  }
  let data: Uint8Array | Float64Array;
  if (typeName === 'ubyte') {
    data = buf.subarray(header, expectedBytes);
  } else {
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const o = header + i * bytes;
      out[i] =
        typeName === 'sbyte'
          ? view.getInt8(o)
          : typeName === 'int16'
            ? view.getInt16(o, false)
            : typeName === 'int32'
              ? view.getInt32(o, false)
              : typeName === 'float32'
                ? view.getFloat32(o, false)
                : view.getFloat64(o, false);
    }
    data = out;
  }
  return { file, type: typeName as IdxArray['type'], dims, data };
}

/** Reads and parses an IDX file (gzipped or not). */
export function readIdxFile(path: string, hint: string): IdxArray {
  return parseIdx(readMaybeGzip(path, hint), path, hint);
}

/** Encodes an IDX file (ubyte or float32), e.g. for tests and for exporting data. */
export function encodeIdx(
  dims: readonly number[],
  values: ArrayLike<number>,
  type: 'ubyte' | 'float32' = 'ubyte',
): Buffer {
  const count = dims.reduce((a, b) => a * b, 1);
  if (values.length !== count)
    throw new Error(`encodeIdx: ${values.length} values for dimensions [${dims.join(', ')}]`);
  const bytes = type === 'ubyte' ? 1 : 4;
  const buf = Buffer.alloc(4 + 4 * dims.length + count * bytes);
  buf[2] = type === 'ubyte' ? 0x08 : 0x0d;
  buf[3] = dims.length;
  dims.forEach((d, i) => buf.writeUInt32BE(d, 4 + 4 * i));
  const header = 4 + 4 * dims.length;
  for (let i = 0; i < count; i++) {
    if (type === 'ubyte') buf[header + i] = values[i];
    else buf.writeFloatBE(values[i], header + 4 * i);
  }
  return buf;
}

/** Checks a labels array (1-D) against its images (count) and the class count; returns labels as Int32Array. */
export function checkLabels(labels: IdxArray, images: IdxArray, numClasses: number | null, hint: string): Int32Array {
  if (labels.dims.length !== 1) {
    throw new UserError(`labels must be 1-D, found dimensions [${labels.dims.join(', ')}]`, {
      file: labels.file,
      expected: `an IDX label file (magic 0x00000801); ${hint}`,
    });
  }
  const n = labels.dims[0];
  const nImages = images.dims[0];
  if (n !== nImages) {
    throw new UserError(`has ${n} labels but ${images.file} has ${nImages} images`, {
      file: labels.file,
      expected: `one label per image; ${hint}`,
    });
  }
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = labels.data[i];
    if (!Number.isInteger(v) || v < 0 || (numClasses !== null && v >= numClasses)) {
      throw new UserError(`label ${v} at index ${i} is out of range`, {
        file: labels.file,
        expected: `${numClasses === null ? 'non-negative integer labels' : `labels 0..${numClasses - 1}`}; ${hint}`,
      });
    }
    out[i] = v;
  }
  return out;
}

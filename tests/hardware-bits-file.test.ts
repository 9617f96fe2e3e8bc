/**
 * Bits files ({"layers": [{"name", "wBits", "aBits"}, ...]}), as `profile simulate --bits-file` reads them.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isUserError } from '../src/errors.js';
import { bitsFileContent, readBitsFile } from '../src/quant/bits-file.js';
import { LENET5 } from './hardware-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'bitalloc-bits-'));
function write(name: string, content: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

describe('readBitsFile', () => {
  it('returns the bits in inventory order whatever the order of the entries', () => {
    const file = write('ok.json', {
      layers: [
        { name: 'fc3', wBits: 8, aBits: 8 },
        { name: 'conv1', wBits: 8, aBits: 32 },
        { name: 'fc1', wBits: 2, aBits: 4 },
        { name: 'conv2', wBits: 4, aBits: 4 },
        { name: 'fc2', wBits: 3, aBits: 5 },
      ],
    });
    assert.deepEqual(readBitsFile(file, LENET5), [
      { wBits: 8, aBits: 32 },
      { wBits: 4, aBits: 4 },
      { wBits: 2, aBits: 4 },
      { wBits: 3, aBits: 5 },
      { wBits: 8, aBits: 8 },
    ]);
  });

  it('round-trips with bitsFileContent', () => {
    const bits = LENET5.map((_, i) => ({ wBits: i + 2, aBits: 8 - i }));
    assert.deepEqual(readBitsFile(write('rt.json', bitsFileContent(LENET5, bits)), LENET5), bits);
  });

  it('names the file and every bad entry: unknown layer, invalid bits, duplicate, missing layers', () => {
    const file = write('bad.json', {
      layers: [
        { name: 'conv1', wBits: 4, aBits: 4 },
        { name: 'conv9', wBits: 4, aBits: 4 },
        { name: 'conv2', wBits: 9, aBits: 4 },
        { name: 'conv1', wBits: 8, aBits: 8 },
        { name: 'fc1', aBits: 4 },
      ],
    });
    assert.throws(
      () => readBitsFile(file, LENET5),
      (e: unknown) => {
        assert.ok(isUserError(e));
        assert.ok(e.message.startsWith(`${file}: invalid bits file (5 problems)`), e.message);
        assert.deepEqual(e.details.problems, [
          "$.layers[1].name: the model has no quantizable layer 'conv9' (layers: conv1, conv2, fc1, fc2, fc3)",
          '$.layers[2].wBits: must be one of 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, got 9',
          "$.layers[3].name: layer 'conv1' is already given at $.layers[0]",
          '$.layers[4].wBits: required field is missing',
          '$.layers: no entry for layers fc2, fc3 (one entry per quantizable layer)',
        ]);
        return true;
      },
    );
  });

  it('a file that is not JSON, or has no layers array, is an error naming the file', () => {
    assert.throws(
      () => readBitsFile(write('nojson.json', '{layers: ['), LENET5),
      (e: unknown) => isUserError(e) && /nojson\.json \$: not valid JSON/.test(e.message),
    );
    assert.throws(
      () => readBitsFile(write('nolayers.json', { conv1: 4 }), LENET5),
      (e: unknown) =>
        isUserError(e) && /nolayers\.json \$\.layers: expected an object with a "layers" array/.test(e.message),
    );
    assert.throws(
      () => readBitsFile(join(dir, 'absent.json'), LENET5),
      (e: unknown) => isUserError(e) && /absent\.json: bits file not found/.test(e.message),
    );
  });
});

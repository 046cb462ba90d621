import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32Of, tableCrc32 } from '../../../gateway/log/record-format.js';

describe('record format CRC', () => {
  it('crc32Of should be the IEEE CRC-32 of zlib for every length and start, on both sides of the switch to zlib', () => {
    const data = Buffer.alloc(700);
    let x = 12345;
    for (let i = 0; i < data.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      data[i] = x >>> 24;
    }
    const reference = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
    for (let start = 0; start < 9; start++) {
      for (let end = start; end <= start + 600; end++) {
        const expected = reference === undefined ? tableCrc32(data, start, end) : reference(data.subarray(start, end));
        expect(crc32Of(data, start, end)).toBe(expected);
      }
    }
  });

  it('table CRC should give the check value of CRC-32/IEEE', () => {
    const check = Buffer.from('123456789');
    expect(tableCrc32(check, 0, check.length)).toBe(0xcbf43926);
    expect(tableCrc32(Buffer.from('x123456789y'), 1, 10)).toBe(0xcbf43926);
    expect(tableCrc32(check, 0, 0)).toBe(0);
  });
});

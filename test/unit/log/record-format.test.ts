import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { crc32Of, f64le, putF64le, putU32le, readOffset, tableCrc32, u32le } from '../../../gateway/log/record-format.js';

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

describe('record format field readers', () => {
  it('u32le, f64le and readOffset read what Buffer writes, and putU32le, putF64le write what Buffer does, high bits, NaN and -0 included', () => {
    const buf = Buffer.alloc(64);
    const u32s = [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 0x12345678];
    const f64s = [0, -0, 1.5, -1e300, Number.NaN, Number.POSITIVE_INFINITY, 1_764_000_000_123, Number.MIN_VALUE];
    for (let pos = 0; pos < 8; pos++) {
      for (const v of u32s) {
        buf.writeUInt32LE(v, pos + 3);
        expect(u32le(buf, pos + 3)).toBe(v);
      }
      for (const v of f64s) {
        buf.writeDoubleLE(v, pos + 5);
        expect(Object.is(f64le(buf, pos + 5), v)).toBe(true);
      }
      for (const v of u32s) {
        const want = Buffer.alloc(16);
        want.writeUInt32LE(v, pos);
        const got = Buffer.alloc(16);
        putU32le(got, v, pos);
        expect(got).toEqual(want);
      }
      for (const v of f64s) {
        const want = Buffer.alloc(16);
        want.writeDoubleLE(v, pos);
        const got = Buffer.alloc(16);
        putF64le(got, v, pos);
        expect(got).toEqual(want);
      }
      for (const offset of [0, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 12_345, Number.MAX_SAFE_INTEGER]) {
        buf.writeBigUInt64LE(BigInt(offset), pos + 9);
        expect(readOffset(buf, pos)).toBe(offset);
      }
    }
  });
});

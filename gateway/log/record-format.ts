import * as zlib from 'node:zlib';
import type { RecordBody } from './types.js';

/**
 * On-disk framing of one log record (little-endian):
 *
 *   u32 crc32 | u32 payloadLength | u8 type | u32 offsetLow | u32 offsetHigh | f64 timestamp | payload
 *
 * The CRC covers every byte after itself (length, type, offset, timestamp and payload), so a torn
 * or bit-flipped header is caught as surely as a damaged payload. Segments are plain
 * concatenations of records; a segment file is named by the offset of its first record.
 */
export const HEADER_BYTES = 25;
/** Hard upper bound of one payload; a larger length field can only be garbage. */
export const MAX_PAYLOAD_BYTES = 128 * 1024 * 1024;
export const SEGMENT_SUFFIX = '.seg';
const TWO_32 = 2 ** 32;

// zlib.crc32 exists from Node 20.15 / 22.2; the table fallback keeps older 20.x working.
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/**
 * Below this many bytes the table CRC in JavaScript is faster than zlib.crc32, whose every call
 * costs about as much as 256 bytes of the table loop (most log records are far shorter).
 */
const NATIVE_CRC_MIN_BYTES = 256;

/** Slicing-by-8 tables: CRC_TABLE[k * 256 + b] is the CRC of byte b followed by k zero bytes. */
const CRC_TABLE = (() => {
  const t = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n]!;
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff]! ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/** CRC-32 (IEEE) of data[start, end), eight bytes a step. */
export function tableCrc32(data: Uint8Array, start: number, end: number): number {
  const t = CRC_TABLE;
  let c = -1;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    c ^= data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    c =
      t[1792 + (c & 0xff)]! ^
      t[1536 + ((c >>> 8) & 0xff)]! ^
      t[1280 + ((c >>> 16) & 0xff)]! ^
      t[1024 + (c >>> 24)]! ^
      t[768 + data[i + 4]!]! ^
      t[512 + data[i + 5]!]! ^
      t[256 + data[i + 6]!]! ^
      t[data[i + 7]!]!;
  }
  for (; i < end; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** CRC-32 (IEEE, as zlib) of buf[start, end). */
export function crc32Of(buf: Buffer, start: number, end: number): number {
  if (nativeCrc32 === undefined || end - start < NATIVE_CRC_MIN_BYTES) return tableCrc32(buf, start, end);
  return nativeCrc32(buf.subarray(start, end));
}

export function segmentFileName(baseOffset: number): string {
  return String(baseOffset).padStart(20, '0') + SEGMENT_SUFFIX;
}

const SEGMENT_NAME = /^(\d{20})\.seg$/;

/** The base offset a segment file name encodes, or null for any other file. */
export function parseSegmentFileName(name: string): number | null {
  const m = SEGMENT_NAME.exec(name);
  if (m === null) return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : null;
}

/** Writes one record at buf[pos] (the caller made room for HEADER_BYTES + payload). */
export function encodeRecordInto(buf: Buffer, pos: number, type: number, offset: number, timestamp: number, payload: Uint8Array | RecordBody): number {
  const size = HEADER_BYTES + payload.length;
  // Byte writes rather than Buffer's writeUInt32LE / writeDoubleLE and their argument checks:
  // this runs for every append, and the caller made the room.
  putU32le(buf, payload.length, pos + 4);
  buf[pos + 8] = type;
  putU32le(buf, offset % TWO_32, pos + 9);
  putU32le(buf, Math.floor(offset / TWO_32), pos + 13);
  putF64le(buf, timestamp, pos + 17);
  if (payload instanceof Uint8Array) buf.set(payload, pos + HEADER_BYTES);
  else payload.writeInto(buf, pos + HEADER_BYTES);
  putU32le(buf, crc32Of(buf, pos + 4, pos + size), pos);
  return size;
}

export function readPayloadLength(buf: Buffer, pos: number): number {
  return buf.readUInt32LE(pos + 4);
}
export function readType(buf: Buffer, pos: number): number {
  return buf[pos + 8]!;
}
export function readOffset(buf: Buffer, pos: number): number {
  return u32le(buf, pos + 9) + u32le(buf, pos + 13) * TWO_32;
}
export function readTimestamp(buf: Buffer, pos: number): number {
  return f64le(buf, pos + 17);
}

/**
 * buf.readUInt32LE(pos) for a position the caller has bounds-checked, without Buffer's argument
 * checks (readers call this several times per record).
 */
export function u32le(buf: Uint8Array, pos: number): number {
  return (buf[pos]! | (buf[pos + 1]! << 8) | (buf[pos + 2]! << 16) | (buf[pos + 3]! << 24)) >>> 0;
}

const f64 = new Float64Array(1);
const f64Bytes = new Uint8Array(f64.buffer);
const BIG_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 0;

/** buf.readDoubleLE(pos) likewise, for a bounds-checked position. */
export function f64le(buf: Buffer, pos: number): number {
  if (BIG_ENDIAN) return buf.readDoubleLE(pos);
  for (let i = 0; i < 8; i++) f64Bytes[i] = buf[pos + i]!;
  return f64[0]!;
}

/** buf.writeUInt32LE(v, pos) for an integer 0 <= v < 2^32 and a position with room. */
export function putU32le(buf: Uint8Array, v: number, pos: number): void {
  buf[pos] = v;
  buf[pos + 1] = v >>> 8;
  buf[pos + 2] = v >>> 16;
  buf[pos + 3] = v >>> 24;
}

/** buf.writeDoubleLE(v, pos) likewise. */
export function putF64le(buf: Buffer, v: number, pos: number): void {
  if (BIG_ENDIAN) {
    buf.writeDoubleLE(v, pos);
    return;
  }
  f64[0] = v;
  for (let i = 0; i < 8; i++) buf[pos + i] = f64Bytes[i]!;
}

/**
 * Size of the record framed at buf[pos], if it lies wholly before `end` and its CRC matches;
 * -1 when the bytes there are incomplete or damaged.
 */
export function validRecordSize(buf: Buffer, pos: number, end: number): number {
  if (end - pos < HEADER_BYTES) return -1;
  const len = u32le(buf, pos + 4);
  if (len > MAX_PAYLOAD_BYTES || pos + HEADER_BYTES + len > end) return -1;
  if (buf[pos + 8] === 0) return -1;
  const size = HEADER_BYTES + len;
  return crc32Of(buf, pos + 4, pos + size) === u32le(buf, pos) ? size : -1;
}

/** A damaged stretch of a segment: [position, end) holds no trustworthy record. */
export interface ScanIssue {
  /** Byte position of the first bad byte (the start of the record that failed). */
  readonly position: number;
  /** Position of the next valid record found after it, or the file size if none follows. */
  readonly end: number;
  /** The offset the bad record should have had. */
  readonly expectedOffset: number;
  readonly reason: 'crc' | 'incomplete' | 'offset';
}

export interface SegmentScan {
  readonly fileBytes: number;
  readonly records: number;
  /** Offset of the first / last valid record; -1 / baseOffset - 1 when there is none. */
  readonly firstOffset: number;
  readonly lastOffset: number;
  readonly firstTimestamp: number;
  readonly lastTimestamp: number;
  /** Position just after the last valid record. */
  readonly goodEnd: number;
  readonly issues: ScanIssue[];
  /** Sparse index: offsets and the byte positions of their records. */
  readonly idxOffsets: number[];
  readonly idxPositions: number[];
}

export type RecordVisitor = (offset: number, type: number, timestamp: number, payloadStart: number, payloadEnd: number) => void;

/**
 * Checks every record of a segment held in memory: CRC and offset continuity (the first record
 * carries `baseOffset`, each next one the previous plus one). A damaged stretch is recorded as an
 * issue and the scan resynchronises on the next record that is valid and carries a later offset.
 */
export function scanSegmentBuffer(buf: Buffer, baseOffset: number, indexIntervalBytes: number, visit?: RecordVisitor): SegmentScan {
  const end = buf.length;
  const issues: ScanIssue[] = [];
  const idxOffsets: number[] = [];
  const idxPositions: number[] = [];
  let pos = 0;
  let expected = baseOffset;
  let records = 0;
  let firstOffset = -1;
  let firstTimestamp = 0;
  let lastTimestamp = 0;
  let goodEnd = 0;
  let lastIndexed = -Infinity;
  while (pos < end) {
    const size = validRecordSize(buf, pos, end);
    const offset = size > 0 ? readOffset(buf, pos) : -1;
    if (size > 0 && offset === expected) {
      const ts = readTimestamp(buf, pos);
      if (records === 0) {
        firstOffset = offset;
        firstTimestamp = ts;
      }
      if (pos - lastIndexed >= indexIntervalBytes) {
        idxOffsets.push(offset);
        idxPositions.push(pos);
        lastIndexed = pos;
      }
      visit?.(offset, readType(buf, pos), ts, pos + HEADER_BYTES, pos + size);
      lastTimestamp = ts;
      records++;
      expected = offset + 1;
      pos += size;
      goodEnd = pos;
      continue;
    }
    const reason: ScanIssue['reason'] = size > 0 ? 'offset' : end - pos < HEADER_BYTES || pos + HEADER_BYTES + readPayloadLength(buf, pos) > end ? 'incomplete' : 'crc';
    const next = findNextRecord(buf, pos + 1, expected - 1);
    issues.push({ position: pos, end: next, expectedOffset: expected, reason });
    if (next >= end) break;
    pos = next;
    expected = readOffset(buf, next);
    lastIndexed = -Infinity;
  }
  return {
    fileBytes: end,
    records,
    firstOffset,
    lastOffset: expected - 1,
    firstTimestamp,
    lastTimestamp,
    goodEnd,
    issues,
    idxOffsets,
    idxPositions,
  };
}

/** Position of the next valid record at or after `from` whose offset is above `after`; buf.length if none. */
export function findNextRecord(buf: Buffer, from: number, after: number): number {
  const end = buf.length;
  for (let q = from; q + HEADER_BYTES <= end; q++) {
    const len = buf.readUInt32LE(q + 4);
    if (len > end - q - HEADER_BYTES) continue;
    if (buf[q + 8] === 0) continue;
    const off = readOffset(buf, q);
    // At most one record per HEADER_BYTES, so an offset further ahead than that is implausible.
    if (off <= after || off > after + 1 + q / HEADER_BYTES) continue;
    if (validRecordSize(buf, q, end) > 0) return q;
  }
  return end;
}

/**
 * Splits a segment's issues into a torn tail and mid-segment corruption. Only the last group
 * commit can be torn (every earlier one was fdatasync'd before the next write began), and a
 * group write covers at most `groupMaxBytes` (or one larger record): so, in the last segment,
 * damage within the final `groupMaxBytes`, or damage with nothing valid after it, is a torn tail.
 * Everything else is corruption. Returns the position to truncate at (-1: no torn tail).
 */
export function classifyIssues(scan: SegmentScan, isLast: boolean, groupMaxBytes: number): { tailFrom: number; mid: ScanIssue[] } {
  const issues = scan.issues;
  if (!isLast || issues.length === 0) return { tailFrom: -1, mid: issues };
  let k = issues.findIndex((is) => scan.fileBytes - is.position <= groupMaxBytes);
  if (k === -1 && issues[issues.length - 1]!.end >= scan.fileBytes) k = issues.length - 1;
  if (k === -1) return { tailFrom: -1, mid: issues };
  return { tailFrom: issues[k]!.position, mid: issues.slice(0, k) };
}

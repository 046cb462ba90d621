import { GatewayError } from '../errors.js';
import type { Reading } from '../kinds/kind-descriptor.js';
import type { WindowResult } from '../window/types.js';
import { decodeAlertTransition, type AlertEvent } from '../wire/alert.js';
import { isPayloadReadings, type BatchCovers, type HealthSample, type OutgoingBatch, type PayloadExpander, type PayloadLimits, type SinkBatch } from './types.js';

/*
 * Binary form of a SinkBatch, stored in the message log as an outgoing record and decoded when
 * it is (re)sent. decode(encode(b)) deep-equals b, including key order, -0, NaN and Infinity.
 *
 *   "PGB" version(1)
 *   covers:   (versions 3, 4, 7 and 8 only) num from, num below  -- see SinkBatch.covers
 *   strings:  varint n, n x (varint byteLength, utf8)       -- every kind, device, key and
 *                                                               string value, once
 *   readings: varint n, n x (str kind, str device, num seq, num ts, varint k, k x (str key, value))
 *             in versions 5 to 8 the section starts with the batch's PayloadLimits (num
 *             maxPastAgeMs, num maxFutureSkewMs), and each entry is tagged: 0x00 and a reading as
 *             above, or 0x01 and the readings of one publish as its payload (PayloadReadings):
 *             num receivedAt, str topic, varint count, varint byteLength, payload bytes
 *   windows:  varint n, n x (str kind, str device, num sizeMs, num slideMs, num start, num end,
 *                            varint g, g x (str key, str value), varint v, v x (str key, num),
 *                            num revision)
 *   health:   varint n, n x (num ts, varint v, v x (str key, num))
 *   alerts:   (version 2 only) varint n, n x (str json, num offset) -- json: the alert wire
 *                               format (wire/alert.ts); alerts are few, their size does not matter
 *
 *   str   = varint index into the string table
 *   num   = 0x00 varint (a non-negative safe integer) | 0x01 float64 LE (anything else)
 *   value = num | 0x02 str
 *
 * Version 1 is a batch without `alerts` (as every batch was before alerts were stored); a batch
 * with `alerts` (even an empty list) is version 2. Versions 3 and 4 are 1 and 2 with `covers`
 * (the gateway's batcher always sets it), placed first so that startup reads it without decoding
 * the batch (coversOfBatch). Versions 5 to 8 are 1 to 4 with tagged reading entries: only a batch
 * holding a payload entry is written so, and decoding one takes a PayloadExpander (the sink
 * thread's). Every version is decoded, so an outbox written by an earlier gateway is still
 * delivered; a gateway from before versions 5 to 8 refuses them as an unsupported version.
 *
 * A 5 Hz heart-rate reading takes about 12 bytes instead of about 90 as JSON: the log holds
 * an hour-long store outage in far fewer bytes.
 */
const MAGIC = [0x50, 0x47, 0x42] as const; // "PGB"
const VERSION_WITHOUT_ALERTS = 1;
const VERSION_WITH_ALERTS = 2;
/** Added to the version of a batch that carries `covers`: 3 and 4. */
const VERSION_COVERS = 2;
/** Added to the version of a batch whose reading entries are tagged (it holds payloads): 5 to 8. */
const VERSION_TAGGED = 4;
const MAX_VERSION = VERSION_WITH_ALERTS + VERSION_COVERS + VERSION_TAGGED;
const ENTRY_READING = 0;
const ENTRY_PAYLOAD = 1;
const TAG_UINT = 0;
const TAG_FLOAT = 1;
const TAG_STRING = 2;

/** Room for one varint: string indexes and counts stay below 2^35. */
const VARINT_MAX_BYTES = 5;
/** Room for one num: the tag, then a float64 or the varint of a safe integer (at most 8 bytes). */
const NUM_MAX_BYTES = 9;
/** Room for one reading value: a num, or the string tag and a varint. */
const VALUE_MAX_BYTES = NUM_MAX_BYTES;
const TWO_POW_28 = 0x1000_0000;
/** Slots of a reading remembered by BatchWriter.slotStr(): the kind, then each value key. */
const SLOT_KIND = 0;
const SLOT_FIRST_KEY = 1;
/** The encode buffer is kept for the next batch up to this size; a bigger one is dropped after use. */
const KEEP_BUFFER_BYTES = 1024 * 1024;

// hasOwnProperty, not Object.hasOwn: V8 turns it into a cheap check inside for...in, where
// Object.hasOwn made encoding some 12 % slower on Node 20.
const hasOwn = (record: object, key: string): boolean => Object.prototype.hasOwnProperty.call(record, key);

/**
 * Writes the body of one batch, collecting its strings, then the string table. Callers
 * reserve() room for a whole record (or entry) first, so the writes need no bounds check.
 */
class BatchWriter {
  buf: Buffer;
  pos = 0;
  readonly strings: string[] = [];
  private readonly index = new Map<string, number>();
  /**
   * The kind and value keys of the previous reading (by SLOT_*) with their indexes: readings
   * come in runs of one kind with the same keys in the same order, so a match here (usually
   * the very same string) skips the map lookup. Device ids interleave too much to gain.
   */
  private readonly lastStrings: string[] = [];
  private readonly lastIndexes: number[] = [];

  constructor(buf: Buffer) {
    this.buf = buf;
  }

  reserve(n: number): void {
    if (this.pos + n > this.buf.length) this.grow(n);
  }

  private grow(n: number): void {
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /**
   * Unsigned LEB128 for integers up to 2^53. Bit operations work on 32 bits only, so a bigger
   * number first gives its low 28 bits as four full groups, split off by (exact) division.
   */
  varint(n: number): void {
    const buf = this.buf;
    let pos = this.pos;
    if (n >= TWO_POW_28) {
      const high = Math.floor(n / TWO_POW_28);
      let low = n - high * TWO_POW_28;
      for (let i = 0; i < 4; i++) {
        buf[pos++] = (low & 0x7f) | 0x80;
        low >>>= 7;
      }
      n = high;
    }
    while (n >= 0x80) {
      buf[pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buf[pos++] = n;
    this.pos = pos;
  }

  num(n: number): void {
    if (Number.isSafeInteger(n) && n >= 0 && !Object.is(n, -0)) {
      this.buf[this.pos++] = TAG_UINT;
      this.varint(n);
    } else {
      this.buf[this.pos++] = TAG_FLOAT;
      this.pos = this.buf.writeDoubleLE(n, this.pos);
    }
  }

  /** Raw bytes (a payload entry's); reserve() room first. */
  bytes(src: Uint8Array): void {
    this.buf.set(src, this.pos);
    this.pos += src.length;
  }

  /** Writes the string's index in the table, adding it on first use. */
  str(s: string): void {
    this.varint(this.indexOf(s));
  }

  private indexOf(s: string): number {
    let i = this.index.get(s);
    if (i === undefined) {
      i = this.strings.length;
      this.strings.push(s);
      this.index.set(s, i);
    }
    return i;
  }

  /** Like str(), for a string in a reading's slot (SLOT_*). */
  slotStr(s: string, slot: number): void {
    let i = this.lastIndexes[slot];
    if (i === undefined || s !== this.lastStrings[slot]) {
      i = this.indexOf(s);
      this.lastStrings[slot] = s;
      this.lastIndexes[slot] = i;
    }
    this.varint(i);
  }

  /**
   * A reading's values: numbers, or strings (enum names). for...in over own properties visits
   * the keys Object.entries would, in the same order, without building the entries; the count
   * goes in front afterwards.
   */
  readingValues(values: Readonly<Record<string, number | string>>): void {
    const countAt = this.pos++;
    let count = 0;
    for (const key in values) {
      if (!hasOwn(values, key)) continue;
      const value = values[key]!;
      this.reserve(VARINT_MAX_BYTES + VALUE_MAX_BYTES);
      this.slotStr(key, SLOT_FIRST_KEY + count);
      if (typeof value === 'string') {
        this.buf[this.pos++] = TAG_STRING;
        this.str(value);
      } else {
        this.num(value);
      }
      count++;
    }
    this.putCount(countAt, count);
  }

  /** A window's group: strings only. */
  stringValues(values: Readonly<Record<string, string>>): void {
    const countAt = this.pos++;
    let count = 0;
    for (const key in values) {
      if (!hasOwn(values, key)) continue;
      this.reserve(2 * VARINT_MAX_BYTES);
      this.str(key);
      this.str(values[key]!);
      count++;
    }
    this.putCount(countAt, count);
  }

  numberValues(values: Readonly<Record<string, number>>): void {
    const countAt = this.pos++;
    let count = 0;
    for (const key in values) {
      if (!hasOwn(values, key)) continue;
      this.reserve(VARINT_MAX_BYTES + NUM_MAX_BYTES);
      this.str(key);
      this.num(values[key]!);
      count++;
    }
    this.putCount(countAt, count);
  }

  /**
   * The string table entry for s: varint byteLength, then UTF-8. ASCII (nearly every kind,
   * device id and key) is copied here, as a call into Buffer.write costs more than a short
   * string; anything else goes through Buffer.write, lone surrogates becoming U+FFFD as ever.
   */
  utf8(s: string): void {
    const length = s.length;
    this.reserve(VARINT_MAX_BYTES + 3 * length);
    if (length < 0x80) {
      const buf = this.buf;
      const start = this.pos + 1;
      let i = 0;
      while (i < length) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        buf[start + i++] = c;
      }
      if (i === length) {
        buf[this.pos] = length;
        this.pos = start + length;
        return;
      }
    }
    this.varint(Buffer.byteLength(s, 'utf8'));
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  /**
   * Writes an entry count into the byte left for it at countAt; 128 entries or more need a
   * longer varint, so the entries move up to make room.
   */
  private putCount(countAt: number, count: number): void {
    if (count < 0x80) {
      this.buf[countAt] = count;
      return;
    }
    const extra = varintBytes(count) - 1;
    this.reserve(extra);
    this.buf.copyWithin(countAt + 1 + extra, countAt + 1, this.pos);
    const end = this.pos + extra;
    this.pos = countAt;
    this.varint(count);
    this.pos = end;
  }
}

function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes++;
  }
  return bytes;
}

function isAscii(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i]! >= 0x80) return false;
  return true;
}

function corrupt(message: string): GatewayError {
  return new GatewayError('GW_ERR_LOG_CORRUPT', `outgoing batch record: ${message}`, { retryable: false });
}

class Reader {
  private pos = 0;
  readonly strings: string[] = [];
  constructor(private readonly buf: Buffer) {}

  byte(): number {
    const b = this.buf[this.pos++];
    if (b === undefined) throw corrupt('truncated');
    return b;
  }

  /** Steps back over the byte just read (a tag peeked at). */
  unread(): void {
    this.pos--;
  }

  varint(): number {
    const buf = this.buf;
    let pos = this.pos;
    let b = buf[pos++];
    if (b !== undefined && b < 0x80) {
      this.pos = pos;
      return b;
    }
    let result = 0;
    let scale = 1;
    for (;;) {
      if (b === undefined) throw corrupt('truncated');
      result += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 0x80;
      if (scale > 2 ** 56) throw corrupt('varint too long');
      b = buf[pos++];
    }
    this.pos = pos;
    return result;
  }

  num(): number {
    const tag = this.byte();
    if (tag === TAG_UINT) return this.varint();
    if (tag === TAG_FLOAT) {
      if (this.pos + 8 > this.buf.length) throw corrupt('truncated');
      const value = this.buf.readDoubleLE(this.pos);
      this.pos += 8;
      return value;
    }
    throw corrupt(`unexpected number tag ${tag}`);
  }

  /** A string by its index in the table. */
  str(): string {
    const i = this.varint();
    const s = this.strings[i];
    if (s === undefined) throw corrupt(`string index ${i} out of range`);
    return s;
  }

  /**
   * The table is decoded as latin1 in one go, one char per byte, and each ASCII string (nearly
   * all of them) sliced out of that: cheaper than a call into Buffer.toString per string.
   */
  readStringTable(): void {
    const count = this.varint();
    const tableStart = this.pos;
    for (let i = 0; i < count; i++) this.skip(this.varint());
    const latin1 = this.buf.toString('latin1', tableStart, this.pos);
    this.pos = tableStart;
    for (let i = 0; i < count; i++) {
      const length = this.varint();
      const start = this.pos;
      const end = start + length;
      const ascii = isAscii(this.buf, start, end);
      this.strings.push(ascii ? latin1.slice(start - tableStart, end - tableStart) : this.buf.toString('utf8', start, end));
      this.pos = end;
    }
  }

  /** The next n bytes, as a view. */
  bytes(n: number): Buffer {
    const start = this.pos;
    this.skip(n);
    return this.buf.subarray(start, this.pos);
  }

  skip(n: number): void {
    if (this.pos + n > this.buf.length) throw corrupt('truncated');
    this.pos += n;
  }

  get done(): boolean {
    return this.pos === this.buf.length;
  }
}

/** Reused by every batch (encoding is synchronous); the result is copied out of it. */
let encodeBuffer: Buffer = Buffer.allocUnsafe(64 * 1024);

function writeReading(writer: BatchWriter, r: Reading): void {
  writer.reserve(3 * VARINT_MAX_BYTES + 2 * NUM_MAX_BYTES); // kind, device, value count; seq, ts
  writer.slotStr(r.kind, SLOT_KIND);
  writer.str(r.deviceId);
  writer.num(r.seq);
  writer.num(r.ts);
  writer.readingValues(r.values);
}

export function encodeBatch(batch: OutgoingBatch): Buffer {
  // The body is written first (collecting strings), then the string table that goes in front.
  const writer = new BatchWriter(encodeBuffer);
  const readings = batch.readings;
  const tagged = readings.some(isPayloadReadings);
  if (tagged) {
    const limits = batch.payloadLimits;
    if (limits === undefined) throw new Error('a batch holding payloads needs the payloadLimits they were decoded with');
    writer.reserve(2 * NUM_MAX_BYTES);
    writer.num(limits.maxPastAgeMs);
    writer.num(limits.maxFutureSkewMs);
  }
  writer.reserve(VARINT_MAX_BYTES);
  writer.varint(readings.length);
  if (!tagged) {
    for (let i = 0; i < readings.length; i++) writeReading(writer, readings[i] as Reading);
  } else {
    for (const r of readings) {
      if (!isPayloadReadings(r)) {
        writer.reserve(1);
        writer.buf[writer.pos++] = ENTRY_READING;
        writeReading(writer, r);
        continue;
      }
      const bytes = r.payload;
      writer.reserve(1 + NUM_MAX_BYTES + 3 * VARINT_MAX_BYTES + bytes.length);
      writer.buf[writer.pos++] = ENTRY_PAYLOAD;
      writer.num(r.receivedAt);
      writer.str(r.topic);
      writer.varint(r.count);
      writer.varint(bytes.length);
      writer.bytes(bytes);
    }
  }
  writer.reserve(VARINT_MAX_BYTES);
  writer.varint(batch.windows.length);
  for (const w of batch.windows) {
    writer.reserve(3 * VARINT_MAX_BYTES + 4 * NUM_MAX_BYTES); // kind, device, group count; times
    writer.str(w.kind);
    writer.str(w.deviceId);
    writer.num(w.sizeMs);
    writer.num(w.slideMs);
    writer.num(w.start);
    writer.num(w.end);
    writer.stringValues(w.group);
    writer.reserve(VARINT_MAX_BYTES);
    writer.numberValues(w.values);
    writer.reserve(NUM_MAX_BYTES);
    writer.num(w.revision);
  }
  writer.reserve(VARINT_MAX_BYTES);
  writer.varint(batch.health.length);
  for (const h of batch.health) {
    writer.reserve(NUM_MAX_BYTES + VARINT_MAX_BYTES); // ts, value count
    writer.num(h.ts);
    writer.numberValues(h.values);
  }
  const alerts = batch.alerts;
  if (alerts !== undefined) {
    writer.reserve(VARINT_MAX_BYTES);
    writer.varint(alerts.length);
    for (const a of alerts) {
      const { offset, ...transition } = a;
      writer.reserve(VARINT_MAX_BYTES + NUM_MAX_BYTES);
      writer.str(JSON.stringify(transition));
      writer.num(offset);
    }
  }

  const bodyBytes = writer.pos;
  const { strings } = writer;
  writer.reserve(VARINT_MAX_BYTES);
  writer.varint(strings.length);
  for (const s of strings) writer.utf8(s);
  const tableEnd = writer.pos;
  const covers = batch.covers;
  if (covers !== undefined) {
    writer.reserve(2 * NUM_MAX_BYTES);
    writer.num(covers.from);
    writer.num(covers.below);
  }

  // "PGB" version, then covers, the string table and the body, in that order.
  const out = Buffer.allocUnsafe(MAGIC.length + 1 + writer.pos);
  let pos = 0;
  for (const b of MAGIC) out[pos++] = b;
  out[pos++] = (alerts === undefined ? VERSION_WITHOUT_ALERTS : VERSION_WITH_ALERTS) + (covers === undefined ? 0 : VERSION_COVERS) + (tagged ? VERSION_TAGGED : 0);
  pos += writer.buf.copy(out, pos, tableEnd, writer.pos);
  pos += writer.buf.copy(out, pos, bodyBytes, tableEnd);
  writer.buf.copy(out, pos, 0, bodyBytes);
  if (writer.buf.length <= KEEP_BUFFER_BYTES) encodeBuffer = writer.buf;
  return out;
}

/** Versions 5 to 8 are 1 to 4 with tagged reading entries. */
function untagged(version: number): number {
  return version > VERSION_TAGGED ? version - VERSION_TAGGED : version;
}

/**
 * The batch of an encoded one. `expand` decodes its payload entries (PayloadReadings) to their
 * readings, in their place among the others; a batch holding one cannot be decoded without it.
 */
export function decodeBatch(payload: Buffer, expand?: PayloadExpander): SinkBatch {
  const reader = new Reader(payload);
  for (const b of MAGIC) {
    if (reader.byte() !== b) throw corrupt('bad magic');
  }
  const version = reader.byte();
  if (version < VERSION_WITHOUT_ALERTS || version > MAX_VERSION) throw corrupt(`unsupported version ${version}`);
  const tagged = version > VERSION_TAGGED;
  const base = untagged(version);
  const covers = base > VERSION_WITH_ALERTS ? { from: reader.num(), below: reader.num() } : undefined;
  const withAlerts = base === VERSION_WITH_ALERTS || base === VERSION_WITH_ALERTS + VERSION_COVERS;
  reader.readStringTable();

  const readings: Reading[] = [];
  const limits: PayloadLimits | null = tagged ? { maxPastAgeMs: reader.num(), maxFutureSkewMs: reader.num() } : null;
  const readingCount = reader.varint();
  for (let i = 0; i < readingCount; i++) {
    if (limits !== null) {
      const entry = reader.byte();
      if (entry === ENTRY_PAYLOAD) {
        const receivedAt = reader.num();
        const topic = reader.str();
        const count = reader.varint();
        const bytes = reader.bytes(reader.varint());
        if (expand === undefined) throw corrupt('a payload entry, and no decoder for it');
        const rs = expand(receivedAt, topic, bytes, count, limits);
        for (let j = 0; j < rs.length; j++) readings.push(rs[j]!);
        continue;
      }
      if (entry !== ENTRY_READING) throw corrupt(`unexpected reading entry tag ${entry}`);
    }
    const kind = reader.str();
    const deviceId = reader.str();
    const seq = reader.num();
    const ts = reader.num();
    const values: Record<string, number | string> = {};
    const n = reader.varint();
    for (let j = 0; j < n; j++) {
      const key = reader.str();
      // Peek at the tag: a string value or a number.
      const tag = reader.byte();
      if (tag === TAG_STRING) {
        values[key] = reader.str();
      } else {
        reader.unread();
        values[key] = reader.num();
      }
    }
    readings.push({ kind, deviceId, seq, ts, values });
  }

  const windows: WindowResult[] = [];
  const windowCount = reader.varint();
  for (let i = 0; i < windowCount; i++) {
    const kind = reader.str();
    const deviceId = reader.str();
    const sizeMs = reader.num();
    const slideMs = reader.num();
    const start = reader.num();
    const end = reader.num();
    const group: Record<string, string> = {};
    const g = reader.varint();
    for (let j = 0; j < g; j++) {
      const key = reader.str();
      group[key] = reader.str();
    }
    const values: Record<string, number> = {};
    const v = reader.varint();
    for (let j = 0; j < v; j++) {
      const key = reader.str();
      values[key] = reader.num();
    }
    const revision = reader.num();
    windows.push({ kind, deviceId, sizeMs, slideMs, start, end, group, values, revision });
  }

  const health: HealthSample[] = [];
  const healthCount = reader.varint();
  for (let i = 0; i < healthCount; i++) {
    const ts = reader.num();
    const values: Record<string, number> = {};
    const v = reader.varint();
    for (let j = 0; j < v; j++) {
      const key = reader.str();
      values[key] = reader.num();
    }
    health.push({ ts, values });
  }
  if (!withAlerts) {
    if (!reader.done) throw corrupt('trailing bytes');
    return covers === undefined ? { readings, windows, health } : { readings, windows, health, covers };
  }
  const alerts: AlertEvent[] = [];
  const alertCount = reader.varint();
  for (let i = 0; i < alertCount; i++) {
    const json = reader.str();
    const offset = reader.num();
    let transition;
    try {
      transition = decodeAlertTransition(Buffer.from(json, 'utf8'));
    } catch (err) {
      throw corrupt(`alert ${i}: ${(err as Error).message}`);
    }
    alerts.push({ ...transition, offset });
  }
  if (!reader.done) throw corrupt('trailing bytes');
  return covers === undefined ? { readings, windows, health, alerts } : { readings, windows, health, alerts, covers };
}

/**
 * The `covers` of an encoded batch, read from its first bytes without decoding the rest; null
 * for a batch without (versions 1 and 2, an earlier gateway's) and for bytes that are no batch
 * or whose covers is no range of log offsets.
 */
export function coversOfBatch(payload: Buffer): BatchCovers | null {
  if (payload.length < MAGIC.length + 1) return null;
  for (let i = 0; i < MAGIC.length; i++) if (payload[i] !== MAGIC[i]) return null;
  const version = payload[MAGIC.length]!;
  if (version > MAX_VERSION || untagged(version) <= VERSION_WITH_ALERTS) return null;
  try {
    const reader = new Reader(payload);
    reader.skip(MAGIC.length + 1);
    const from = reader.num();
    const below = reader.num();
    return Number.isSafeInteger(from) && Number.isSafeInteger(below) && from >= 0 && from <= below ? { from, below } : null;
  } catch {
    return null;
  }
}

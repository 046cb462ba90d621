/**
 * Store batches that keep a publish of several readings as its payload (PayloadReadings): the
 * batcher's choice, the codec's tagged entries, and the sink thread's decoding of them with the
 * real payload decoder, against the readings ingest had.
 */
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { isGatewayError } from '../../../gateway/errors.js';
import { createEventBus } from '../../../gateway/events.js';
import { createPayloadReader } from '../../../gateway/ingest/ingest-record.js';
import { createPayloadDecoder } from '../../../gateway/ingest/payload-decoder.js';
import type { Reading } from '../../../gateway/kinds/kind-descriptor.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { ReadingPipeline } from '../../../gateway/pipeline/reading-pipeline.js';
import { SequenceTracker } from '../../../gateway/pipeline/sequence-tracker.js';
import { coversOfBatch, decodeBatch, encodeBatch } from '../../../gateway/sinks/batch-codec.js';
import { PAYLOAD_MAX_BYTES_PER_READING, PAYLOAD_MIN_READINGS, SinkBatcher, subscribeSinkBatcher } from '../../../gateway/sinks/sink-batcher.js';
import { isPayloadReadings, type OutgoingBatch, type PayloadExpander, type PayloadReadings } from '../../../gateway/sinks/types.js';
import { createWindowEngine } from '../../../gateway/window/window-engine.js';
import { createPayloadEncoder } from '../../../simulators/payload-encoder.js';
import { Registry } from 'prom-client';
import { loadConfig } from '../../../gateway/config/load-config.js';

const kinds = createKindRegistry();
const limits = { maxPastAgeMs: 7 * 86_400_000, maxFutureSkewMs: 300_000 };
const decoder = createPayloadDecoder(kinds, limits);
const readPayload = createPayloadReader(kinds);
const expand: PayloadExpander = (receivedAt, topic, payload, _count, batchLimits) => readPayload(topic, payload, receivedAt, batchLimits);
const T0 = 1_764_000_000_000;
const sourceOf = (p: { topic: string; payload: Buffer; receivedAt: number }) => ({ topic: p.topic, payload: p.payload, receivedAt: p.receivedAt });
const hr = createPayloadEncoder('heart-rate', 'protobuf');
const bridge = createPayloadEncoder('bridge', 'protobuf');

/** A publish as ingest took it: its topic, payload, arrival and the readings it decoded to. */
function publish(kind: 'heart-rate' | 'bridge', deviceId: string, n: number, firstSeq = 1): { topic: string; payload: Buffer; receivedAt: number; readings: readonly Reading[] } {
  const topic = `sensors/${kind}/${deviceId}`;
  const payload =
    kind === 'heart-rate'
      ? hr.encodeBatch(Array.from({ length: n }, (_, i) => ({ seq: firstSeq + i, ts: T0 + ((firstSeq + i) % 250) * 200, bpm: 60 + ((firstSeq + i) % 90), ...(i % 3 === 0 ? {} : { rrMs: 700 + i }) })))
      : bridge.encodeBatch(Array.from({ length: n }, (_, i) => ({ seq: firstSeq + i, ts: T0 + ((firstSeq + i) % 250) * 200, lane: 1 + (i % 2), vehicleClass: i % 2 === 0 ? 'CAR' : 'TRUCK', speedKmh: 50 + i / 4, axles: 2 + (i % 3), ...(i % 2 === 0 ? { weightKg: 1500.5 + i } : {}) })));
  const receivedAt = T0 + 60_000;
  const readings = decoder.decode(kinds.get(kind)!, deviceId, payload, receivedAt).readings;
  expect(readings).toHaveLength(n);
  return { topic, payload, receivedAt, readings };
}

function entryOf(p: ReturnType<typeof publish>): PayloadReadings {
  return { receivedAt: p.receivedAt, topic: p.topic, payload: p.payload, count: p.readings.length };
}

function codeOf(fn: () => unknown): string | null {
  try {
    fn();
  } catch (err) {
    return isGatewayError(err) ? err.code : 'not a GatewayError';
  }
  return null;
}

describe('store batch payload entries: codec', () => {
  const a = publish('heart-rate', 'hr-1', 50);
  const b = publish('bridge', 'br-1', 7, 100);
  const single: Reading = { kind: 'heart-rate', deviceId: 'hr-2', seq: 9, ts: T0, values: { bpm: 61 } };
  const outgoing: OutgoingBatch = {
    readings: [single, entryOf(a), entryOf(b), { ...single, seq: 10 }],
    windows: [],
    health: [{ ts: T0, values: { heap_mb: 1 } }],
    payloadLimits: limits,
  };

  it('should decode each payload entry in its place, to the readings ingest had, with and without alerts and covers', () => {
    const expected = [single, ...a.readings, ...b.readings, { ...single, seq: 10 }];
    for (const extra of [{}, { covers: { from: 3, below: 9 } }, { alerts: [] }, { alerts: [], covers: { from: 0, below: 1 } }]) {
      const encoded = encodeBatch({ ...outgoing, ...extra });
      // Versions 5 to 8: 1 to 4 with tagged entries.
      expect(encoded[3], JSON.stringify(extra)).toBeGreaterThanOrEqual(5);
      const { payloadLimits: _, ...rest } = outgoing;
      expect(decodeBatch(encoded, expand)).toEqual({ ...rest, readings: expected, ...extra });
      expect(coversOfBatch(encoded)).toEqual('covers' in extra ? extra.covers : null);
    }
  });

  it('should write a batch without payload entries as before (untagged), whatever the expander', () => {
    const { payloadLimits: _, ...rest } = outgoing;
    const plain = { ...rest, readings: [single] };
    const encoded = encodeBatch(plain);
    expect(encoded[3]).toBe(1);
    expect(decodeBatch(encoded)).toEqual(plain);
    expect(decodeBatch(encoded, expand)).toEqual(plain);
  });

  it('should hold a payload entry in about the bytes of its payload, fewer than its readings encoded one by one', () => {
    const asPayload = encodeBatch({ readings: [entryOf(a)], windows: [], health: [], payloadLimits: limits }).length;
    const asReadings = encodeBatch({ readings: a.readings, windows: [], health: [] }).length;
    expect(asPayload).toBeLessThan(a.payload.length + 64);
    expect(asPayload).toBeLessThan(asReadings);
  });

  it('should refuse a payload entry it has no decoder for, a truncated one and an unknown tag with GW_ERR_LOG_CORRUPT', () => {
    const encoded = encodeBatch(outgoing);
    expect(codeOf(() => decodeBatch(encoded))).toBe('GW_ERR_LOG_CORRUPT');
    for (let cut = 4; cut < encoded.length; cut += 37) expect(codeOf(() => decodeBatch(encoded.subarray(0, cut), expand)), `cut at ${cut}`).toBe('GW_ERR_LOG_CORRUPT');
    // The first entry's tag sits after the string table, the limits (limits of one varint byte
    // each here: two bytes apiece with their tags) and the entry count: make it 7.
    const bad = encodeBatch({ ...outgoing, payloadLimits: { maxPastAgeMs: 100, maxFutureSkewMs: 100 } });
    let pos = 4;
    const strings = bad[pos++]!;
    for (let i = 0; i < strings; i++) pos += 1 + bad[pos]!; // every string here is under 128 bytes
    const tagAt = pos + 2 + 2 + 1;
    expect(bad[tagAt]).toBe(0);
    bad[tagAt] = 7;
    expect(codeOf(() => decodeBatch(bad, expand))).toBe('GW_ERR_LOG_CORRUPT');
  });

  it('should give the expander the count the batch was made with and the limits it says', () => {
    const seen: [number, unknown][] = [];
    decodeBatch(encodeBatch({ ...outgoing, payloadLimits: { maxPastAgeMs: 86_400_000, maxFutureSkewMs: 1234.5 } }), (receivedAt, topic, payload, count, batchLimits) => {
      seen.push([count, batchLimits]);
      return expand(receivedAt, topic, payload, count, batchLimits);
    });
    expect(seen).toEqual([
      [50, { maxPastAgeMs: 86_400_000, maxFutureSkewMs: 1234.5 }],
      [7, { maxPastAgeMs: 86_400_000, maxFutureSkewMs: 1234.5 }],
    ]);
  });

  it('should decode a payload with the limits of its batch, not those of the thread decoding it', () => {
    // Readings 3 days old, batched under the default 7 days: all kept, whatever limits decode others.
    const old = publish('heart-rate', 'hr-old', 20);
    const later = { ...entryOf(old), receivedAt: old.receivedAt + 3 * 86_400_000 };
    const under = (maxPastAgeMs: number) => decodeBatch(encodeBatch({ readings: [later], windows: [], health: [], payloadLimits: { ...limits, maxPastAgeMs } }), expand).readings;
    expect(under(7 * 86_400_000)).toEqual(old.readings);
    expect(under(86_400_000)).toEqual([]);
  });

  it('should refuse to write a batch holding payloads without their limits', () => {
    const { payloadLimits: _, ...rest } = outgoing;
    expect(() => encodeBatch(rest)).toThrow(/payloadLimits/);
  });
});

describe('store batch payload entries: the batcher', () => {
  function batcherOf(maxPoints: number): { batcher: SinkBatcher; batches: OutgoingBatch[] } {
    const batches: OutgoingBatch[] = [];
    const batcher = new SinkBatcher({ maxPoints, flushIntervalMs: 60_000, enqueue: async (batch) => void batches.push(batch), logger: pino({ level: 'silent' }), payloadLimits: limits });
    return { batcher, batches };
  }
  const shapes = (batches: OutgoingBatch[]): (string | number)[][] => batches.map((b) => b.readings.map((r) => (isPayloadReadings(r) ? `payload of ${r.count}` : r.seq)));

  it('should keep a publish of several readings as its payload, whole, and the fewer or wordier ones as readings', async () => {
    const { batcher, batches } = batcherOf(100);
    const big = publish('heart-rate', 'hr-1', 60);
    const few = publish('heart-rate', 'hr-2', PAYLOAD_MIN_READINGS - 1, 500);
    const fits = publish('heart-rate', 'hr-3', 30, 1000);
    const over = publish('heart-rate', 'hr-4', 20, 2000);
    batcher.addRecordReadings(big.readings, 0, false, sourceOf(big));
    batcher.addRecordReadings(few.readings, 1, false, sourceOf(few));
    batcher.addRecordReadings(fits.readings, 2, false, sourceOf(fits));
    // 93 pending: 20 more do not fit, so the batch goes first and the publish starts the next one.
    batcher.addRecordReadings(over.readings, 3, false, sourceOf(over));
    // No payload (replay, Sparkplug B, a mapped source): readings.
    batcher.addRecordReadings(big.readings.slice(0, 5), 4, false);
    // Bytes above PAYLOAD_MAX_BYTES_PER_READING a reading (JSON, say): readings.
    const wordy = Buffer.alloc(PAYLOAD_MAX_BYTES_PER_READING * 5 + 1);
    batcher.addRecordReadings(big.readings.slice(0, 5), 5, false, { ...sourceOf(big), payload: wordy });
    await batcher.close();
    expect(shapes(batches)).toEqual([
      ['payload of 60', 500, 501, 502, 'payload of 30'],
      ['payload of 20', 1, 2, 3, 4, 5, 1, 2, 3, 4, 5],
    ]);
    expect(batches.map((b) => b.covers)).toEqual([
      { from: 0, below: 3 },
      { from: 3, below: 6 },
    ]);
    // The batch the sink thread decodes is the one of readings.
    const decoded = batches.map((b) => decodeBatch(encodeBatch(b), expand).readings);
    expect(decoded[0]).toEqual([...big.readings, ...few.readings, ...fits.readings]);
    expect(decoded[1]).toEqual([...over.readings, ...big.readings.slice(0, 5), ...big.readings.slice(0, 5)]);
  });

  it('should keep a copy of the payload, not the bytes ingest read, and make no payload entry without payloadLimits', async () => {
    const { batcher, batches } = batcherOf(100);
    const p = publish('heart-rate', 'hr-1', 10);
    const read = Buffer.from(p.payload);
    batcher.addRecordReadings(p.readings, 0, false, { ...sourceOf(p), payload: read });
    // What ingest read is the socket's, not the batch's: changed after, the batch holds what it was.
    read.fill(0);
    await batcher.close();
    expect(decodeBatch(encodeBatch(batches[0]!), expand).readings).toEqual(p.readings);

    const plain: OutgoingBatch[] = [];
    const without = new SinkBatcher({ maxPoints: 100, flushIntervalMs: 60_000, enqueue: async (b) => void plain.push(b), logger: pino({ level: 'silent' }) });
    without.addRecordReadings(p.readings, 0, false, sourceOf(p));
    await without.close();
    expect(shapes(plain)).toEqual([p.readings.map((r) => r.seq)]);
    expect(plain[0]!.payloadLimits).toBeUndefined();
  });

  it('should split a publish of more readings than a batch holds across batches, as readings', async () => {
    const { batcher, batches } = batcherOf(40);
    const p = publish('bridge', 'br-1', 90);
    batcher.addRecordReadings(p.readings, 0, false, sourceOf(p));
    await batcher.close();
    expect(batches.map((b) => b.readings.length)).toEqual([40, 40, 10]);
    expect(batches.flatMap((b) => b.readings).every((r) => !isPayloadReadings(r))).toBe(true);
  });

  it('should count a payload entry by its readings in the batch bound and merge waiting batches by it', async () => {
    let fail = true;
    const batches: OutgoingBatch[] = [];
    const batcher = new SinkBatcher({
      maxPoints: 100,
      flushIntervalMs: 60_000,
      retryInitialMs: 1,
      payloadLimits: limits,
      enqueue: async (batch) => {
        if (fail) throw new Error('disk full');
        batches.push(batch);
      },
      logger: pino({ level: 'silent' }),
    });
    const p = publish('heart-rate', 'hr-1', 45);
    const q = publish('heart-rate', 'hr-2', 45, 100);
    const r = publish('heart-rate', 'hr-3', 45, 200);
    batcher.addRecordReadings(p.readings, 0, false, sourceOf(p));
    expect(batcher.pendingPoints).toBe(45);
    void batcher.flush();
    batcher.addRecordReadings(q.readings, 1, false, sourceOf(q));
    void batcher.flush();
    batcher.addRecordReadings(r.readings, 2, false, sourceOf(r));
    void batcher.flush();
    // Waiting: [p] in flight, [q], then r merged into q's (90 points), not into a third.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(batcher.waitingBatches).toBe(2);
    fail = false;
    await batcher.close();
    expect(shapes(batches)).toEqual([['payload of 45'], ['payload of 45', 'payload of 45']]);
  });
});

describe('store batch payload entries: what the pipeline tells', () => {
  it('should tell the payload with reading.durable only when dedup dropped none of its readings', async () => {
    const config = loadConfig({ env: {}, overrides: { dataDir: '/nonexistent' } });
    const events = createEventBus();
    const clock = { now: () => T0 + 60_000 };
    const windows = createWindowEngine({ kinds, config: config.window, clock, maxPastAgeMs: config.ingest.maxPastAgeMs });
    const pipeline = new ReadingPipeline({ kinds, tracker: new SequenceTracker(1024, 1000), windows, events, metrics: { duplicate: () => undefined }, registry: new Registry(), clock });
    const batches: OutgoingBatch[] = [];
    const batcher = new SinkBatcher({ maxPoints: 1000, flushIntervalMs: 60_000, enqueue: async (b) => void batches.push(b), logger: pino({ level: 'silent' }), payloadLimits: limits });
    subscribeSinkBatcher(events, batcher, { writeRawReadings: true });
    const p = publish('heart-rate', 'hr-1', 10);
    const again = publish('heart-rate', 'hr-1', 20, 6); // seq 6-10 seen already
    pipeline.process(p.readings, 0, p.receivedAt, false, p.topic, p.payload);
    pipeline.process(again.readings, 1, again.receivedAt, false, again.topic, again.payload);
    await batcher.close();
    expect(shapes(batches)).toEqual([['payload of 10', ...Array.from({ length: 15 }, (_, i) => 11 + i)]]);
    function shapes(bs: OutgoingBatch[]): (string | number)[][] {
      return bs.map((b) => b.readings.map((r) => (isPayloadReadings(r) ? `payload of ${r.count}` : r.seq)));
    }
  });
});

import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { bridgeKind } from '../../../gateway/kinds/bridge.js';
import { heartRateKind } from '../../../gateway/kinds/heart-rate.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createPayloadDecoder, describeValue } from '../../../gateway/ingest/payload-decoder.js';
import { REJECT_REASONS } from '../../../gateway/ingest/reject-reasons.js';
import { mulberry32 } from '../../helpers/random.js';

const config = loadConfig({ env: {} });
const decoders = [createPayloadDecoder(createKindRegistry(), config.ingest), createPayloadDecoder(createKindRegistry(), config.ingest, undefined, { fast: false })];
const NOW = 1_763_800_000_000;
const good = { seq: 1, ts: NOW, bpm: 72, rrMs: 800 };

/** JSON values that reached code assuming a number or a string before (and their relatives). */
const HOSTILE: readonly unknown[] = [
  { toNumber: 1 },
  { toNumber: 'x' },
  { toString: 1 },
  { toString: 1, valueOf: 1 },
  { valueOf: {} , toString: {} },
  { low: 1, high: 0, unsigned: false },
  [],
  [1],
  [{ toString: 1 }],
  {},
  'x'.repeat(10_000),
  '72',
  true,
  null,
  -0,
  1e308,
  -1e308,
  { __proto__: { toNumber: 1 } },
  { constructor: 1 },
];

describe('payload decoder against hostile JSON', () => {
  it('poison JSON: a number field holding {"toNumber":1} is an invalid reading, not a TypeError', () => {
    for (const decoder of decoders) {
      const payload = Buffer.from(`{"seq":1,"ts":${NOW},"bpm":{"toNumber":1}}`);
      const r = decoder.decode(heartRateKind, 'a1', payload, NOW);
      expect(r.readings).toEqual([]);
      expect(r.rejected).toEqual([{ reason: 'invalid', detail: 'bpm must be an integer in [0, 300], got an object' }]);
    }
  });

  it('poison JSON: every field of both kinds holding any hostile value is rejected with a counted reason and never throws', () => {
    const bridge = { seq: 1, ts: NOW, lane: 2, vehicleClass: 'TRUCK', speedKmh: 70, axles: 5, weightKg: 1000 };
    let cases = 0;
    for (const decoder of decoders) {
      for (const [kind, base] of [[heartRateKind, good], [bridgeKind, bridge]] as const) {
        for (const field of Object.keys(base)) {
          for (const value of HOSTILE) {
            // Built as text, so keys such as __proto__ and toString arrive as a device sends them.
            const text = JSON.stringify({ ...base, [field]: '\u0000' }).replace('"\\u0000"', JSON.stringify(value) ?? 'null');
            const r = decoder.decode(kind, 'd1', Buffer.from(text), NOW);
            cases++;
            const total = r.readings.length + r.rejected.length;
            expect(total, text).toBe(1);
            for (const rej of r.rejected) {
              expect(REJECT_REASONS, text).toContain(rej.reason);
              expect(rej.detail.length, text).toBeLessThan(300);
            }
          }
        }
      }
    }
    expect(cases).toBeGreaterThan(200);
  });

  it('poison JSON: a reading whose own keys shadow Object.prototype (toString, valueOf, __proto__) is judged on its fields alone', () => {
    for (const decoder of decoders) {
      const text = `{"seq":1,"ts":${NOW},"bpm":70,"toString":1,"valueOf":1,"__proto__":{"bpm":5},"hasOwnProperty":1}`;
      const r = decoder.decode(heartRateKind, 'a1', Buffer.from(text), NOW);
      expect(r.rejected).toEqual([]);
      expect(r.readings[0]?.values).toEqual({ bpm: 70 });
    }
  });

  it('rejection details render a device value without calling into it', () => {
    expect(describeValue(JSON.parse('{"toString":1,"valueOf":1}'))).toBe('an object');
    expect(describeValue([1, 2])).toBe('an array of 2');
    expect(describeValue('a'.repeat(500)).length).toBeLessThanOrEqual(67);
    expect(describeValue(7)).toBe('7');
    expect(describeValue(null)).toBe('null');
  });

  it('JSON with more than 64 leading spaces is decoded, as the README says leading spaces are fine', () => {
    for (const decoder of decoders) {
      for (const pad of [' '.repeat(65), ' \t\r'.repeat(400)]) {
        const r = decoder.decode(heartRateKind, 'a1', Buffer.from(pad + JSON.stringify(good)), NOW);
        expect(r.rejected).toEqual([]);
        expect(r.readings).toHaveLength(1);
      }
    }
  });

  it('should never throw on seeded random JSON-like and binary payloads', () => {
    const rand = mulberry32(0x5eed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const atoms = ['0', '-1', '1e999', '"x"', 'true', 'null', '{}', '[]', '{"toNumber":1}', '{"toString":{}}', `${NOW}`, '1.5', '300', '[[[[[]]]]]'];
    const keys = ['seq', 'ts', 'bpm', 'rrMs', 'lane', 'vehicleClass', 'speedKmh', 'axles', 'weightKg', '__proto__', 'toString', 'constructor'];
    for (let i = 0; i < 5000; i++) {
      let payload: Buffer;
      if (rand() < 0.7) {
        const obj = () => `{${Array.from({ length: 1 + Math.floor(rand() * 6) }, () => `"${pick(keys)}":${pick(atoms)}`).join(',')}}`;
        const text = rand() < 0.3 ? `[${Array.from({ length: Math.floor(rand() * 4) }, obj).join(',')}]` : obj();
        payload = Buffer.from(rand() < 0.1 ? text.slice(0, Math.floor(rand() * text.length)) : text);
      } else {
        payload = Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
      }
      for (const decoder of decoders) {
        const r = decoder.decode(pick([heartRateKind, bridgeKind]), 'f1', payload, NOW);
        for (const rej of r.rejected) expect(REJECT_REASONS).toContain(rej.reason);
      }
    }
  });
});

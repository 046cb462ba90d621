import { describe, expect, it } from 'vitest';
import { parseSensorTopic, SensorTopicCache } from '../../../gateway/ingest/topic.js';

describe('SensorTopicCache', () => {
  const topics = [
    'sensors/heart-rate/athlete-1',
    'sensors/bridge/b.2:east_1',
    'sensors/heart-rate/',
    'sensors//dev',
    'sensors/heart-rate/a/b',
    'other/heart-rate/a',
    'sensors/heart-rate/' + 'x'.repeat(129),
    'sensors/heart-rate/athlete-1',
  ];

  it('should answer exactly as parseSensorTopic (as a route without a mapping), first time and from the memo', () => {
    const cache = new SensorTopicCache(100, () => true);
    for (let round = 0; round < 2; round++) {
      for (const t of topics) {
        const parsed = parseSensorTopic(t);
        expect(cache.route(t)).toEqual(parsed === null ? null : { ...parsed, mapping: null });
      }
    }
  });

  it('should answer the same route object for a memoized topic, and a new one for a topic it does not keep', () => {
    const cache = new SensorTopicCache(100, (t) => t.kind === 'heart-rate');
    expect(cache.route('sensors/heart-rate/a')).toBe(cache.route('sensors/heart-rate/a'));
    expect(cache.route('sensors/bridge/a')).not.toBe(cache.route('sensors/bridge/a'));
  });

  it('should keep only well-formed topics it is told to keep, and never more than its bound', () => {
    const cache = new SensorTopicCache(3, (t) => t.kind === 'heart-rate' || t.kind === 'bridge');
    for (const t of topics) cache.route(t);
    expect(cache.size).toBe(2);
    expect(cache.route(`sensors/${'k'.repeat(10_000)}/dev`)).toEqual({ kind: 'k'.repeat(10_000), deviceId: 'dev', mapping: null });
    expect(cache.size).toBe(2);
    for (let i = 0; i < 10; i++) {
      expect(cache.route(`sensors/heart-rate/d${i}`)).toEqual({ kind: 'heart-rate', deviceId: `d${i}`, mapping: null });
      expect(cache.size).toBeLessThanOrEqual(3);
    }
  });
});

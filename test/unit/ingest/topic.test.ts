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

  it('should answer exactly as parseSensorTopic, first time and from the memo', () => {
    const cache = new SensorTopicCache(100, () => true);
    for (let round = 0; round < 2; round++) {
      for (const t of topics) expect(cache.parse(t)).toEqual(parseSensorTopic(t));
    }
  });

  it('should keep only well-formed topics it is told to keep, and never more than its bound', () => {
    const cache = new SensorTopicCache(3, (t) => t.kind === 'heart-rate' || t.kind === 'bridge');
    for (const t of topics) cache.parse(t);
    expect(cache.size).toBe(2);
    expect(cache.parse(`sensors/${'k'.repeat(10_000)}/dev`)).toEqual({ kind: 'k'.repeat(10_000), deviceId: 'dev' });
    expect(cache.size).toBe(2);
    for (let i = 0; i < 10; i++) {
      expect(cache.parse(`sensors/heart-rate/d${i}`)).toEqual({ kind: 'heart-rate', deviceId: `d${i}` });
      expect(cache.size).toBeLessThanOrEqual(3);
    }
  });
});

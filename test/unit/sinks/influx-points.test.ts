import { describe, expect, it } from 'vitest';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createInfluxMapping, formatSize, parseSize, rawTimestampUs, snakeCase } from '../../../gateway/sinks/influx-points.js';
import { parseInfluxUrl, toSinkError } from '../../../gateway/sinks/influx-sink.js';

const mapping = createInfluxMapping(createKindRegistry());

describe('influx points', () => {
  it('should spell keys in snake_case', () => {
    expect(['vehicleClass', 'speedKmh_mean', 'bpm_min', 'rrMs', 'count'].map(snakeCase)).toEqual(['vehicle_class', 'speed_kmh_mean', 'bpm_min', 'rr_ms', 'count']);
  });

  it('should format window sizes as Grafana users type them, and parse them back', () => {
    for (const [ms, s] of [[10_000, '10s'], [60_000, '1m'], [90_000, '90s'], [3_600_000, '1h'], [86_400_000, '1d'], [1500, '1500ms']] as const) {
      expect(formatSize(ms)).toBe(s);
      expect(parseSize(s)).toBe(ms);
    }
    expect(parseSize('ten')).toBeNull();
  });

  it('should put a raw reading at ts plus (seq mod 1000) microseconds', () => {
    expect(rawTimestampUs(1_700_000_000_123, 5)).toBe(1_700_000_000_123_005);
    expect(rawTimestampUs(1_700_000_000_123, 12_345)).toBe(1_700_000_000_123_345);
    expect(Math.floor(rawTimestampUs(1_700_000_000_123, 999) / 1000)).toBe(1_700_000_000_123);
  });

  it('should map a bridge reading to tags device, lane, vehicle_class and the other fields', () => {
    const point = mapping.readingPoint({ kind: 'bridge', deviceId: 'b1', seq: 3, ts: 1000, values: { lane: 2, vehicleClass: 'TRUCK', speedKmh: 80.5, axles: 5 } });
    expect(point).toEqual({ measurement: 'bridge_vehicle', tags: { device: 'b1', lane: '2', vehicle_class: 'TRUCK' }, fields: { seq: 3, speed_kmh: 80.5, axles: 5 }, timestamp: 1_000_003 });
  });

  it('should map a window to <measurement>_window with size and group tags, timestamped at its start', () => {
    const point = mapping.windowPoint({ kind: 'bridge', deviceId: 'b1', sizeMs: 60_000, slideMs: 60_000, start: 120_000, end: 180_000, group: { vehicleClass: 'CAR', lane: '1' }, values: { count: 4, speedKmh_mean: 70, speedKmh_max: Number.NaN }, revision: 1 });
    expect(point).toEqual({
      measurement: 'bridge_vehicle_window',
      tags: { device: 'b1', size: '1m', vehicle_class: 'CAR', lane: '1' },
      fields: { count: 4, speed_kmh_mean: 70, revision: 1, end_ms: 180_000, slide_ms: 60_000 },
      timestamp: 120_000,
    });
  });

  it('should map rows back to readings and windows in the gateway spelling', () => {
    expect(mapping.rowToReading('bridge', { time: 1_000_003, device: 'b1', lane: '2', vehicle_class: 'TRUCK', seq: 3, speed_kmh: 80.5, axles: 5, weight_kg: null })).toEqual({
      kind: 'bridge',
      deviceId: 'b1',
      seq: 3,
      ts: 1000,
      values: { lane: 2, vehicleClass: 'TRUCK', speedKmh: 80.5, axles: 5 },
    });
    expect(mapping.rowToWindow('heart-rate', { time: 10_000, device: 'a', size: '10s', bpm_count: 2, bpm_min: 60, revision: 0, end_ms: 20_000, slide_ms: 10_000 })).toEqual({
      kind: 'heart-rate',
      deviceId: 'a',
      sizeMs: 10_000,
      slideMs: 10_000,
      start: 10_000,
      end: 20_000,
      group: {},
      values: { bpm_count: 2, bpm_min: 60 },
      revision: 0,
    });
  });

  it('should write health samples to gateway_health and skip one without finite values', () => {
    expect(mapping.healthPoint({ ts: 5, values: { readings_per_s: 2 } })).toEqual({ measurement: 'gateway_health', fields: { readings_per_s: 2 }, timestamp: 5 });
    expect(mapping.healthPoint({ ts: 5, values: { heap_mb: Number.NaN } })).toBeNull();
  });
});

describe('influx sink helpers', () => {
  it('should take the database from the last path segment of the URL', () => {
    expect(parseInfluxUrl('http://127.0.0.1:8086/pulsegate')).toEqual({ host: '127.0.0.1', port: 8086, protocol: 'http', path: '', database: 'pulsegate' });
    expect(parseInfluxUrl('https://u:p%40ss@influx.example:9999/proxy/metrics')).toEqual({
      host: 'influx.example',
      port: 9999,
      protocol: 'https',
      path: '/proxy',
      database: 'metrics',
      username: 'u',
      password: 'p@ss',
    });
    expect(parseInfluxUrl('http://localhost').database).toBe('pulsegate');
  });

  it('should map network errors to a retryable GW_ERR_SINK_UNAVAILABLE and other failures to GW_ERR_SINK_WRITE', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(toSinkError(refused, 'write')).toMatchObject({ code: 'GW_ERR_SINK_UNAVAILABLE', retryable: true });
    expect(toSinkError(new TypeError('bug'), 'write')).toMatchObject({ code: 'GW_ERR_SINK_WRITE', retryable: false });
  });
});

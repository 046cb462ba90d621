import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createEventBus } from '../../gateway/events.js';
import type { WindowResult } from '../../gateway/window/types.js';
import { sample } from '../helpers/metrics.js';

const window: WindowResult = { kind: 'heart-rate', deviceId: 'd1', sizeMs: 10_000, slideMs: 10_000, start: 0, end: 10_000, group: {}, values: { bpm_count: 1 }, revision: 0 };

describe('event bus', () => {
  it('a listener that throws broke the emitter: the other listeners still run, emit does not throw, the error is counted and logged once per interval', () => {
    const lines: string[] = [];
    const logger = pino({ level: 'error' }, new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) }));
    const bus = createEventBus({ logger, errorLogIntervalMs: 60_000 });
    const seen: string[] = [];
    bus.on('window.emitted', () => seen.push('first'));
    bus.on('window.emitted', () => {
      throw new Error('listener bug');
    });
    bus.on('window.emitted', (e) => seen.push(`third:${e.offset}:${e.replay}`));
    expect(() => bus.emit('window.emitted', { window, offset: 7, replay: false })).not.toThrow();
    bus.emit('window.emitted', { window, offset: 8, replay: true });
    expect(seen).toEqual(['first', 'third:7:false', 'first', 'third:8:true']);
    expect(bus.listenerErrors).toBe(2);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('listener bug');
    expect(lines[0]).toContain('window.emitted');
  });

  it('should count listener errors on /metrics and refuse listeners past maxListeners', async () => {
    const registry = new Registry();
    const bus = createEventBus({ registry, maxListeners: 2 });
    bus.on('reading.late', () => {
      throw new Error('x');
    });
    bus.on('reading.late', () => undefined);
    expect(() => bus.on('reading.late', () => undefined)).toThrow(/more than 2 listeners of reading.late/);
    bus.emit('reading.late', { reading: { kind: 'heart-rate', deviceId: 'd', seq: 1, ts: 0, values: {} }, sizeMs: 10_000, offset: 0, replay: false });
    expect(sample(await registry.metrics(), 'pulsegate_event_listener_errors_total')).toBe(1);
  });

  it('should deliver synchronously, in subscription order, and stop after unsubscribe', () => {
    const bus = createEventBus();
    const seen: number[] = [];
    const off = bus.on('reading.durable', (e) => seen.push(e.offset));
    expect(bus.has('reading.durable')).toBe(true);
    expect(bus.has('reading.late')).toBe(false);
    bus.emit('reading.durable', { readings: [], offset: 1, receivedAt: 0, replay: false, gaps: 0, gapFills: 0 });
    expect(seen).toEqual([1]);
    off();
    bus.emit('reading.durable', { readings: [], offset: 2, receivedAt: 0, replay: false, gaps: 0, gapFills: 0 });
    expect(seen).toEqual([1]);
    expect(bus.has('reading.durable')).toBe(false);
  });
});

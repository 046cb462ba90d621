import type { FastifyPluginAsync } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { LruList } from '../lru-list.js';

/** What the gateway knows of one device since it started (replayed records included). */
export interface DeviceStat {
  readonly kind: string;
  readonly deviceId: string;
  /** Readings that passed dedup. */
  readings: number;
  duplicates: number;
  /** Sequence numbers skipped, and skipped ones that arrived later: net loss in transit = gaps - gapFills. */
  gaps: number;
  gapFills: number;
  /** Gateway time of the first and the last publish, ms. */
  firstSeenAt: number;
  lastSeenAt: number;
  /** Event time and values of the newest reading (by event time). */
  lastTs: number;
  lastValues: Readonly<Record<string, number | string>>;
}

export interface DeviceStatsOptions {
  /** Devices kept; beyond, the least recently seen is forgotten (policy evict-lru, counted). */
  readonly maxDevices: number;
  readonly registry?: Registry;
}

/**
 * Per-device counts for the console's device table and GET /v1/devices: kept in memory, bounded
 * by maxDevices (least recently seen evicted first, pulsegate_devices_evicted_total), not part of
 * the checkpoint: after a restart they count from the records replayed on.
 */
/** A device's entry in the recency list (least recently seen first). */
interface Entry {
  readonly key: string;
  readonly stat: DeviceStat;
  prev: Entry | null;
  next: Entry | null;
}

export class DeviceStats {
  private readonly devices = new Map<string, Entry>();
  private readonly recency = new LruList<Entry>();
  private readonly evicted: Counter;
  evictions = 0;

  constructor(private readonly options: DeviceStatsOptions) {
    this.evicted = new Counter({
      name: 'pulsegate_devices_evicted_total',
      help: 'Devices forgotten by the device table (GET /v1/devices) past ingest.maxDevices, least recently seen first',
      registers: options.registry === undefined ? [] : [options.registry],
    });
    this.evicted.inc(0);
  }

  /** One durable ingest record of one device: readings accepted, duplicates dropped, sequence gaps and fills it caused. */
  record(
    key: string,
    kind: string,
    deviceId: string,
    change: { readonly accepted: number; readonly duplicates: number; readonly gaps: number; readonly gapFills: number },
    newest: { readonly ts: number; readonly values: Readonly<Record<string, number | string>> } | null,
    at: number,
  ): void {
    let e = this.devices.get(key);
    if (e === undefined) {
      if (this.devices.size >= this.options.maxDevices) {
        const oldest = this.recency.head;
        if (oldest !== null) {
          this.recency.remove(oldest);
          this.devices.delete(oldest.key);
          this.evictions++;
          this.evicted.inc();
        }
      }
      e = { key, stat: { kind, deviceId, readings: 0, duplicates: 0, gaps: 0, gapFills: 0, firstSeenAt: at, lastSeenAt: at, lastTs: -Infinity, lastValues: {} }, prev: null, next: null };
      this.devices.set(key, e);
      this.recency.push(e);
    } else {
      // The device moves to the end of the recency list (a few pointer writes, no rehash).
      this.recency.touch(e);
    }
    const d = e.stat;
    d.readings += change.accepted;
    d.duplicates += change.duplicates;
    d.gaps += change.gaps;
    d.gapFills += change.gapFills;
    d.lastSeenAt = Math.max(d.lastSeenAt, at);
    if (newest !== null && newest.ts >= d.lastTs) {
      d.lastTs = newest.ts;
      d.lastValues = newest.values;
    }
  }

  get size(): number {
    return this.devices.size;
  }

  list(): DeviceStat[] {
    return [...this.devices.values()].map((e) => e.stat).sort((a, b) => a.kind.localeCompare(b.kind) || a.deviceId.localeCompare(b.deviceId));
  }
}

/** GET /v1/devices: every device the gateway has seen, with its counts; a fastify plugin for createHttpServer({ plugins }). */
export function deviceRoutes(stats: DeviceStats, now: () => number = Date.now): FastifyPluginAsync {
  return async (app) => {
    app.get('/v1/devices', async () => {
      const at = now();
      return {
        now: at,
        evicted: stats.evictions,
        devices: stats.list().map((d) => ({
          kind: d.kind,
          deviceId: d.deviceId,
          readings: d.readings,
          duplicates: d.duplicates,
          gaps: d.gaps,
          gapFills: d.gapFills,
          netLoss: d.gaps - d.gapFills,
          firstSeenAt: d.firstSeenAt,
          lastSeenAt: d.lastSeenAt,
          silentMs: Math.max(0, at - d.lastSeenAt),
          lastTs: Number.isFinite(d.lastTs) ? d.lastTs : null,
          lastValues: d.lastValues,
        })),
      };
    });
  };
}

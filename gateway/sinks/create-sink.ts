import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { SinksConfig } from '../config/config.js';
import type { KindRegistry } from '../kinds/registry.js';
import { createEmbeddedSink } from './embedded-sink.js';
import { createInfluxSink } from './influx-sink.js';
import { createSinkMetrics, type SinkWriteObserver } from './sink-metrics.js';
import type { Sink } from './types.js';

export interface CreateSinkOptions {
  readonly config: SinksConfig;
  readonly kinds: KindRegistry;
  readonly logger?: Logger;
  /** Metrics to record into; created on `registry` when omitted. */
  readonly metrics?: SinkWriteObserver;
  readonly registry?: Registry;
}

/** InfluxDB when sinks.influxUrl is set, else the embedded SQLite store at sinks.embeddedPath. */
export function createSink(options: CreateSinkOptions): Sink {
  const { config, kinds, logger } = options;
  const metrics = options.metrics ?? (options.registry === undefined ? undefined : createSinkMetrics(options.registry));
  const extras = { ...(logger !== undefined ? { logger } : {}), ...(metrics !== undefined ? { metrics } : {}) };
  return config.influxUrl !== null
    ? createInfluxSink({ config, kinds, ...extras })
    : createEmbeddedSink({ config, kinds, ...extras });
}

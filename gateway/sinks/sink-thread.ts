import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Level, Logger } from 'pino';
import type { SinksConfig } from '../config/config.js';
import { GatewayError, type ErrorCode } from '../errors.js';
import type { Reading } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import type { WindowResult } from '../window/types.js';
import type { AlertEvent } from '../wire/alert.js';
import { encodeBatch } from './batch-codec.js';
import { EMBEDDED_SINK_NAME, type EmbeddedRetentionResult } from './embedded-sink.js';
import { INFLUX_SINK_NAME } from './influx-sink.js';
import type { SinkWriteObserver } from './sink-metrics.js';
import type { SerializedError, SinkThreadData, SinkThreadReply, SinkThreadRequest } from './sink-thread-protocol.js';
import type { AlertQuery, ReadingQuery, SerializedRows, SerializingSink, Sink, SinkBatch, WindowQuery } from './types.js';

/**
 * The configured sink (InfluxDB or the embedded store) on a thread of its own. The gateway's
 * thread only copies each encoded batch across; decoding it, building points or rows, and the
 * store's own work (SQLite inserts are synchronous) use the second core instead of holding the
 * thread that runs MQTT ingest.
 */
export interface ThreadedSink extends SerializingSink {
  /** Writes one batch in batch-codec form, as the outbox reads it from the log. */
  writeEncoded(payload: Uint8Array): Promise<void>;
  /**
   * Writes several such batches in order, as one write on the embedded store (one transaction:
   * all or none); InfluxDB gets them one by one, and a failure leaves the earlier ones written
   * (resending them overwrites, never duplicates).
   */
  writeEncodedMany(payloads: readonly Uint8Array[]): Promise<void>;
  /** Ages out the embedded store's rows; null for a sink that keeps its own retention. */
  applyRetention(nowMs: number): Promise<EmbeddedRetentionResult | null>;
}

export interface ThreadedSinkOptions {
  readonly config: SinksConfig;
  readonly kinds: KindRegistry;
  /** Receives the sink thread's log lines. */
  readonly logger: Logger;
  readonly metrics?: SinkWriteObserver;
  /**
   * The thread's entry module, by the URL of its compiled `.js` (the `.ts` beside it is run when
   * there is none): it serves the requests with serveSinkThread. Default: the gateway's,
   * gateway/sink-thread-main.ts, the thread's composition root (it gives the sink thread the
   * payload reader of ingest).
   */
  readonly entry?: URL;
}

const DEFAULT_ENTRY = new URL('../sink-thread-main.js', import.meta.url);

/** How long close() waits for the store to close before it ends the thread. */
const CLOSE_TIMEOUT_MS = 10_000;

type Pending = { resolve: (value: unknown) => void; reject: (err: Error) => void };
type RequestBody = SinkThreadRequest extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

export function createThreadedSink(options: ThreadedSinkOptions): ThreadedSink {
  const { config, logger, metrics } = options;
  const name = config.influxUrl !== null ? INFLUX_SINK_NAME : EMBEDDED_SINK_NAME;
  const data: SinkThreadData = { config, kinds: [...options.kinds.values()], logLevel: logger.level };
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let worker: Worker | null = null;
  let started = false;
  let closed = false;
  let closing: Promise<void> | null = null;

  function spawn(): Worker {
    const w = startSinkWorker(options.entry ?? DEFAULT_ENTRY, data);
    w.unref();
    w.on('message', (message: SinkThreadReply) => {
      if (message.type === 'reply') {
        const p = pending.get(message.id);
        if (p === undefined) return;
        pending.delete(message.id);
        if (pending.size === 0) w.unref();
        if (message.ok) p.resolve(message.value);
        else p.reject(deserialize(message.error));
      } else if (message.type === 'metric') {
        if (message.outcome === 'ok') metrics?.written(message.sink, message.points, message.seconds);
        else metrics?.failed(message.sink, message.seconds);
      } else if (message.type === 'payloadMismatch') {
        metrics?.payloadMismatch?.(message.batched, message.decoded);
      } else {
        relayLog(logger, message.line);
      }
    });
    w.on('error', (err) => logger.error({ err }, 'sink thread failed'));
    w.on('exit', (code) => {
      if (worker === w) worker = null;
      const failure = new GatewayError('GW_ERR_SINK_UNAVAILABLE', `the sink thread exited (code ${code})`, { retryable: true });
      for (const p of pending.values()) p.reject(failure);
      pending.clear();
      if (!closed) logger.warn({ code }, 'sink thread exited; it restarts with the next write');
    });
    return w;
  }

  function call(body: RequestBody, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (closed && body.op !== 'close') {
      return Promise.reject(new GatewayError('GW_ERR_SHUTTING_DOWN', `the ${name} sink is closed`, { retryable: false }));
    }
    if (worker === null) {
      worker = spawn();
      // A restarted thread opens its store again before anything else.
      if (started && body.op !== 'start') void call({ op: 'start' }).catch(() => undefined);
    }
    const w = worker;
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      if (pending.size === 1) w.ref();
      try {
        w.postMessage({ ...body, id }, transfer);
      } catch (err) {
        pending.delete(id);
        if (pending.size === 0) w.unref();
        reject(err as Error);
      }
    });
  }

  function writeEncoded(payload: Uint8Array): Promise<void> {
    // A copy with its own ArrayBuffer, moved (not cloned) to the sink thread: the payload may be a
    // view into a larger read buffer, and cloning a view clones its whole buffer.
    const own = new Uint8Array(payload);
    return call({ op: 'write', payload: own }, [own.buffer]) as Promise<void>;
  }

  function writeEncodedMany(payloads: readonly Uint8Array[]): Promise<void> {
    const own = payloads.map((p) => new Uint8Array(p));
    return call({ op: 'writeMany', payloads: own }, own.map((o) => o.buffer)) as Promise<void>;
  }

  return {
    name,
    async start() {
      started = true;
      await call({ op: 'start' });
    },
    write(batch: SinkBatch) {
      return writeEncoded(encodeBatch(batch));
    },
    writeEncoded,
    writeEncodedMany,
    queryWindows(query: WindowQuery) {
      return call({ op: 'queryWindows', query }) as Promise<WindowResult[]>;
    },
    queryReadings(query: ReadingQuery) {
      return call({ op: 'queryReadings', query }) as Promise<Reading[]>;
    },
    queryWindowsJson(query: WindowQuery) {
      return call({ op: 'queryWindowsJson', query }) as Promise<SerializedRows>;
    },
    queryReadingsJson(query: ReadingQuery) {
      return call({ op: 'queryReadingsJson', query }) as Promise<SerializedRows>;
    },
    queryAlerts(query: AlertQuery) {
      return call({ op: 'queryAlerts', query }) as Promise<AlertEvent[]>;
    },
    queryAlertsJson(query: AlertQuery) {
      return call({ op: 'queryAlertsJson', query }) as Promise<SerializedRows>;
    },
    applyRetention(nowMs: number) {
      return call({ op: 'applyRetention', nowMs }) as Promise<EmbeddedRetentionResult | null>;
    },
    close() {
      closing ??= (async () => {
        closed = true;
        const w = worker;
        if (w === null) return;
        // The store closes on its thread (SQLite checkpoints its WAL); the thread ends either way.
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            logger.warn({ ms: CLOSE_TIMEOUT_MS }, 'the store did not close in time; ending its thread');
            resolve();
          }, CLOSE_TIMEOUT_MS);
        });
        try {
          await Promise.race([call({ op: 'close' }), timeout]);
        } catch (err) {
          logger.error({ err }, 'closing the store failed');
        } finally {
          clearTimeout(timer);
          await w.terminate();
        }
      })();
      return closing;
    },
  };
}

/**
 * The worker runs the compiled entry (dist/, the bench build); from the TypeScript sources (tsx,
 * vitest) it registers tsx's loader first and runs the `.ts` beside it.
 */
function startSinkWorker(entry: URL, data: SinkThreadData): Worker {
  if (existsSync(fileURLToPath(entry))) return new Worker(entry, { workerData: data });
  const source = new URL(entry.href.replace(/\.js$/, '.ts')).href;
  // tsx's ESM entry (its CommonJS twin cannot register the loader from a worker).
  const tsxApi = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((m) => { (m.register ?? m.default.register)(); return import(${JSON.stringify(source)}); });`;
  return new Worker(bootstrap, { eval: true, workerData: data });
}

function deserialize(e: SerializedError): Error {
  let err: Error & { code?: string };
  if (e.gateway) {
    err = new GatewayError(e.code as ErrorCode, e.message, { retryable: e.retryable, ...(e.details !== null ? { details: e.details } : {}) });
  } else {
    err = new Error(e.message);
    if (e.code !== null) err.code = e.code;
  }
  // The stack where it happened, on the sink thread.
  if (e.stack !== null) err.stack = e.stack;
  return err;
}

function relayLog(logger: Logger, line: string): void {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    logger.warn({ line }, 'unreadable log line from the sink thread');
    return;
  }
  const { level, msg, ...fields } = entry;
  // Both loggers have pino's default levels; a line without one is logged as info.
  const method = ((typeof level === 'number' ? logger.levels.labels[level] : undefined) ?? 'info') as Level;
  logger[method](fields, typeof msg === 'string' ? msg : '');
}

/**
 * The sink thread's work (see sink-thread.ts; gateway/sink-thread-main.ts is the thread's entry):
 * hosts the configured sink, decodes the encoded batches it is sent, and answers each request
 * with its result or its error. Logs and metrics go back to the gateway's thread as messages, so
 * they land in the gateway's logger and registry.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { GatewayError, isGatewayError } from '../errors.js';
import { createKindRegistry } from '../kinds/registry.js';
import { decodeBatch } from './batch-codec.js';
import { createSink } from './create-sink.js';
import type { SinkWriteObserver } from './sink-metrics.js';
import type { SinkThreadData, SinkThreadReply, SinkThreadRequest, SerializedError } from './sink-thread-protocol.js';
import type { PayloadExpander, Sink } from './types.js';

/** What the thread's entry builds its payload decoder from. */
export interface PayloadExpanderContext {
  readonly data: SinkThreadData;
  readonly logger: Logger;
  /** Counts a payload that decoded to other readings than ingest had (pulsegate_sink_payload_mismatches_total). */
  readonly mismatch: (batched: number, decoded: number) => void;
}

/**
 * Serves the sink thread's requests. `expanderFor` makes the decoder of the batches' payload
 * entries (PayloadReadings); without it, a batch holding one is refused as corrupt. If it throws,
 * every request answers that configuration error, as when the store cannot be built.
 */
export function serveSinkThread(expanderFor?: (context: PayloadExpanderContext) => PayloadExpander): void {
  const port = parentPort;
  if (port === null) throw new Error('the sink thread runs only as a worker thread');
  const data = workerData as SinkThreadData;

  const post = (message: SinkThreadReply): void => port.postMessage(message);

  const logger = pino(
    { level: data.logLevel, base: null, timestamp: false },
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        post({ type: 'log', line: chunk.toString('utf8') });
        callback();
      },
    }),
  );

  const metrics: SinkWriteObserver = {
    written: (sink, points, seconds) => post({ type: 'metric', outcome: 'ok', sink, points, seconds }),
    failed: (sink, seconds) => post({ type: 'metric', outcome: 'error', sink, points: 0, seconds }),
  };

  /**
   * A sink that cannot even be built (a setting the schema lets through, e.g. an influxUrl that is
   * no URL) is a configuration error: every request answers it, not retryable, and the gateway
   * stops at startup instead of restarting this thread forever.
   */
  let sink: Sink | null = null;
  let loadError: GatewayError | null = null;
  let expand: PayloadExpander | undefined;
  try {
    // The decoder first: a sink is only served with it.
    expand = expanderFor?.({ data, logger, mismatch: (batched, decoded) => post({ type: 'payloadMismatch', batched, decoded }) });
    sink = createSink({ config: data.config, kinds: createKindRegistry(data.kinds), logger, metrics });
  } catch (err) {
    loadError = new GatewayError('GW_ERR_CONFIG_INVALID', `sinks: ${(err as Error).message}`, { retryable: false });
  }

  function serialize(err: unknown): SerializedError {
    const e = err instanceof Error ? err : new Error(String(err));
    // The cause's message too: InfluxDB's HTTP status and the like live there.
    const cause = e.cause instanceof Error ? ` (${e.cause.message})` : '';
    const stack = e.stack ?? null;
    if (isGatewayError(err)) {
      // details go through JSON, so that nothing in them can make the reply uncloneable.
      const details = err.details === undefined ? null : (JSON.parse(JSON.stringify(err.details)) as Record<string, unknown>);
      return { gateway: true, code: err.code, message: err.message + cause, retryable: err.retryable, details, stack };
    }
    const code = (e as { code?: unknown }).code;
    return { gateway: false, code: typeof code === 'string' ? code : null, message: e.message + cause, retryable: false, details: null, stack };
  }

  const decode = (p: Uint8Array) => decodeBatch(Buffer.from(p.buffer, p.byteOffset, p.byteLength), expand);

  async function handle(request: SinkThreadRequest): Promise<unknown> {
    if (sink === null) throw loadError!;
    switch (request.op) {
      case 'start':
        return sink.start();
      case 'write':
        return sink.write(decode(request.payload));
      case 'writeMany': {
        // Decoded as the sink takes them: one decoded batch alive at a time.
        if (sink.writeMany !== undefined) {
          const payloads = request.payloads;
          return sink.writeMany({
            *[Symbol.iterator]() {
              for (const p of payloads) yield decode(p);
            },
          });
        }
        for (const p of request.payloads) await sink.write(decode(p));
        return;
      }
      case 'queryWindows':
        return sink.queryWindows(request.query);
      case 'queryReadings':
        return sink.queryReadings(request.query);
      case 'queryAlerts':
        return sink.queryAlerts(request.query);
      case 'queryAlertsJson': {
        const rows = await sink.queryAlerts(request.query);
        return { count: rows.length, json: JSON.stringify(rows) };
      }
      case 'queryWindowsJson':
      case 'queryReadingsJson': {
        // Serialized here, on the sink thread: one string crosses to the main thread.
        const rows: readonly unknown[] = request.op === 'queryWindowsJson' ? await sink.queryWindows(request.query) : await sink.queryReadings(request.query);
        return { count: rows.length, json: JSON.stringify(rows) };
      }
      case 'applyRetention': {
        const retaining = sink as { applyRetention?: (nowMs: number) => unknown };
        return typeof retaining.applyRetention === 'function' ? retaining.applyRetention(request.nowMs) : null;
      }
      case 'close':
        return sink.close();
    }
  }

  port.on('message', (request: SinkThreadRequest) => {
    handle(request).then(
      (value) => post({ type: 'reply', id: request.id, ok: true, value: value ?? null }),
      (err: unknown) => {
        try {
          post({ type: 'reply', id: request.id, ok: false, error: serialize(err) });
        } catch {
          const e = err as { message?: unknown };
          post({ type: 'reply', id: request.id, ok: false, error: { gateway: false, code: null, message: String(e?.message ?? err), retryable: false, details: null, stack: null } });
        }
      },
    );
  });
}

/**
 * Entry of the sink thread (see sink-thread.ts): hosts the configured sink, decodes the encoded
 * batches it is sent, and answers each request with its result or its error. Logs and metrics
 * go back to the gateway's thread as messages, so they land in the gateway's logger and registry.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { isGatewayError } from '../errors.js';
import { createKindRegistry } from '../kinds/registry.js';
import { decodeBatch } from './batch-codec.js';
import { createSink } from './create-sink.js';
import type { SinkWriteObserver } from './sink-metrics.js';
import type { SinkThreadData, SinkThreadReply, SinkThreadRequest, SerializedError } from './sink-thread-protocol.js';

const port = parentPort;
if (port === null) throw new Error('sink-worker.ts runs only as a worker thread');
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

const sink = createSink({ config: data.config, kinds: createKindRegistry(data.kinds), logger, metrics });

function serialize(err: unknown): SerializedError {
  if (isGatewayError(err)) {
    return { gateway: true, code: err.code, message: err.message, retryable: err.retryable, details: err.details ?? null };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (e as { code?: unknown }).code;
  return { gateway: false, code: typeof code === 'string' ? code : null, message: e.message, retryable: false, details: null };
}

async function handle(request: SinkThreadRequest): Promise<unknown> {
  switch (request.op) {
    case 'start':
      return sink.start();
    case 'write':
      return sink.write(decodeBatch(Buffer.from(request.payload.buffer, request.payload.byteOffset, request.payload.byteLength)));
    case 'queryWindows':
      return sink.queryWindows(request.query);
    case 'queryReadings':
      return sink.queryReadings(request.query);
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
    (err: unknown) => post({ type: 'reply', id: request.id, ok: false, error: serialize(err) }),
  );
});

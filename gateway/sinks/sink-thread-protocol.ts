/** Messages between the gateway's thread and the sink thread (structured-clone data only). */
import type { SinksConfig } from '../config/config.js';
import type { KindDescriptor } from '../kinds/kind-descriptor.js';
import type { AlertQuery, ReadingQuery, WindowQuery } from './types.js';

export interface SinkThreadData {
  readonly config: SinksConfig;
  readonly kinds: readonly KindDescriptor[];
  readonly logLevel: string;
}

export type SinkThreadRequest = { readonly id: number } & (
  | { readonly op: 'start' }
  /** A batch in batch-codec form; decoded on the sink thread. */
  | { readonly op: 'write'; readonly payload: Uint8Array }
  /** Several batches, written in order: in one transaction by a sink with writeMany, else one by one. */
  | { readonly op: 'writeMany'; readonly payloads: readonly Uint8Array[] }
  | { readonly op: 'queryWindows'; readonly query: WindowQuery }
  | { readonly op: 'queryReadings'; readonly query: ReadingQuery }
  | { readonly op: 'queryWindowsJson'; readonly query: WindowQuery }
  | { readonly op: 'queryReadingsJson'; readonly query: ReadingQuery }
  | { readonly op: 'queryAlerts'; readonly query: AlertQuery }
  | { readonly op: 'queryAlertsJson'; readonly query: AlertQuery }
  | { readonly op: 'applyRetention'; readonly nowMs: number }
  | { readonly op: 'close' }
);

export interface SerializedError {
  /** A GatewayError (rebuilt as one on the other side) or any other error. */
  readonly gateway: boolean;
  readonly code: string | null;
  readonly message: string;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | null;
  readonly stack: string | null;
}

export type SinkThreadReply =
  | { readonly type: 'reply'; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly type: 'reply'; readonly id: number; readonly ok: false; readonly error: SerializedError }
  /** One pino JSON line of the sink thread's logger. */
  | { readonly type: 'log'; readonly line: string }
  | { readonly type: 'metric'; readonly outcome: 'ok' | 'error'; readonly sink: string; readonly points: number; readonly seconds: number }
  /** A store batch payload that decoded to `decoded` readings where ingest had `batched`. */
  | { readonly type: 'payloadMismatch'; readonly batched: number; readonly decoded: number };

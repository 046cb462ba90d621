/**
 * One catalog of error codes. Every code is documented in README.md ("Error codes"), and a unit
 * test checks that it stays so.
 */
export const ERROR_CODES = {
  GW_ERR_CONFIG_INVALID: 'The configuration failed validation; every problem is listed.',
  GW_ERR_CONFIG_READ: 'The configuration file could not be read or parsed.',
  GW_ERR_CREDENTIALS_INVALID: 'The device credentials file could not be read or is malformed.',
  GW_ERR_DECODE: 'A payload could not be decoded as protobuf or JSON.',
  GW_ERR_INVALID_READING: 'A decoded reading failed validation (range, type, timestamp).',
  GW_ERR_UNKNOWN_KIND: 'The topic names a sensor kind the gateway does not know.',
  GW_ERR_TOO_LARGE: 'A payload is larger than mqtt.maxPayloadBytes.',
  GW_ERR_UNAUTHORIZED: 'A client published or subscribed outside what its credentials allow.',
  GW_ERR_LOG_CORRUPT: 'A log segment is corrupt in the middle (not a torn tail).',
  GW_ERR_LOG_IO: 'A log read, write or fsync failed.',
  GW_ERR_LOG_CLOSED: 'The log was closed before the operation completed.',
  GW_ERR_CHECKPOINT: 'A checkpoint could not be written or read.',
  GW_ERR_SINK_WRITE: 'A time-series store write failed.',
  GW_ERR_SINK_UNAVAILABLE: 'The time-series store cannot be reached.',
  GW_ERR_QUERY_INVALID: 'A query parameter to the HTTP API is invalid.',
  GW_ERR_SHUTTING_DOWN: 'The gateway is shutting down and refuses new work.',
  GW_ERR_DATA_DIR_LOCKED: 'Another running gateway holds the lock of the data directory (or of log.dir).',
  GW_ERR_CHECKPOINT_AHEAD: 'A checkpoint covers offsets the log no longer holds (segments deleted by hand): startup is refused.',
  GW_ERR_SINK_QUERY: 'A time-series store query failed (a read, never a write).',
  GW_ERR_BUSY: 'Too many HTTP queries at once: the query queue is full or the wait timed out (503, Retry-After).',
  GW_ERR_AUTH_BUSY: 'Too many MQTT logins already wait for a password check; the CONNECT is refused with CONNACK 3 (server unavailable).',
  GW_ERR_WEBHOOK_DELIVERY: 'A webhook endpoint did not take an alert (network error, timeout, non-2xx answer); retried, or dead-lettered after maxAttempts.',
  GW_ERR_LAST_EVENT_ID: 'A Last-Event-ID (header, lastEventId or after) is not a log offset of this log: 400.',
  GW_ERR_FILTER_INVALID: 'A stream filter (kind, device, rule, minSeverity, where) is invalid; the message names the bad part: 400.',
  GW_ERR_TOKEN_INVALID: 'A stream request has no valid bearer token (missing, bad signature, expired, wrong issuer or audience): 401.',
  GW_ERR_FORBIDDEN: 'A stream request asks for a stream, kind or device outside its token\'s claims: 403.',
  GW_ERR_TOO_MANY_CLIENTS: 'delivery.maxClients streams and long-polls are open already: 503 with Retry-After.',
  GW_ERR_QUERY_TIMEOUT: 'A POST /v1/query query ran longer than http.sqlTimeoutMs and was stopped.',
  GW_ERR_HANDOFF_INVALID: 'A push hand-off request is malformed (subscription, lastEventId, stream or filter); answered with 400.',
  GW_ERR_HANDOFF_LIMIT: 'The push proxy holds pushProxy.maxHandoffs hand-offs (or pushProxy.maxStreams streams) already; answered with 503.',
  GW_ERR_VAPID_KEYS: 'The VAPID key file of the push proxy is missing, unreadable or malformed.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface GatewayErrorOptions {
  cause?: unknown;
  /** Whether retrying the same operation later can succeed (backoff and retry vs dead-letter). */
  retryable?: boolean;
  details?: Record<string, unknown>;
}

export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: GatewayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details;
  }
}

export function isGatewayError(err: unknown, code?: ErrorCode): err is GatewayError {
  return err instanceof GatewayError && (code === undefined || err.code === code);
}

export interface MqttConfig {
  readonly host: string;
  readonly port: number;
  readonly wsPort: number | null;
  readonly maxPayloadBytes: number;
  readonly allowAnonymous: boolean;
  readonly credentialsFile: string | null;
  readonly deadLetterPayloadBytes: number;
  readonly tlsPort: number | null;
  readonly wssPort: number | null;
  readonly clientCertificates: ClientCertificateMode;
  readonly clientIdPolicy: 'username-prefix' | 'any';
  readonly auth: MqttAuthConfig;
  /** Resolved at load: null in the file means the larger of 1 MiB and maxPayloadBytes + 1 KiB. */
  readonly maxPacketBytes: number;
  readonly maxConnectBytes: number;
  readonly packetTimeoutMs: number;
}
export interface MqttAuthConfig {
  readonly hashWorkers: number;
  readonly maxPendingLogins: number;
  readonly maxFailuresPerUsername: number;
  readonly maxFailuresPerIp: number;
  readonly failureWindowMs: number;
  readonly lockoutMs: number;
  readonly maxLockoutMs: number;
  readonly maxTracked: number;
}
/** off: not asked for; optional: asked for, a device without one logs in with a password; required: the TLS handshake fails without a trusted one. */
export type ClientCertificateMode = 'off' | 'optional' | 'required';
export interface HttpConfig {
  readonly host: string;
  readonly port: number;
  readonly maxQueryRows: number;
  readonly maxConcurrentQueries: number;
  readonly maxQueuedQueries: number;
  readonly queryQueueTimeoutMs: number;
  readonly tls: boolean;
}
export interface IngestConfig {
  readonly maxFutureSkewMs: number;
  readonly maxPastAgeMs: number;
  readonly seqWindow: number;
  readonly maxInFlightReadings: number;
  readonly maxDevices: number;
  readonly rateLimit: { readonly publishesPerSecond: number | null; readonly burst: number };
}
export interface LogConfig {
  readonly dir: string;
  readonly segmentMaxBytes: number;
  readonly groupCommitIntervalMs: number;
  readonly groupCommitMaxBytes: number;
  readonly checkpointIntervalMs: number;
  readonly retentionMs: number;
  readonly retentionSchedule: string;
  readonly diskHighWaterBytes: number | null;
  readonly skipCorrupt: boolean;
}
export interface WindowConfig {
  readonly defaultSizesMs: readonly number[];
  readonly sizesMs: Readonly<Record<string, readonly number[]>>;
  readonly outOfOrdernessMs: number;
  readonly allowedLatenessMs: number;
  readonly idleTimeoutMs: number;
  readonly maxOpenWindowsPerKey: number;
  readonly maxDevices: number;
  readonly maxWatermarkSkewMs: number;
  readonly maxForgottenDevices: number;
}
export interface SinksConfig {
  readonly influxUrl: string | null;
  readonly rawRetention: string;
  readonly windowRetention: string;
  readonly writeRawReadings: boolean;
  readonly batchMaxPoints: number;
  readonly flushIntervalMs: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  readonly healthIntervalMs: number;
  readonly shutdownDrainMs: number;
  readonly embeddedPath: string;
}
export interface RuntimeConfig {
  readonly heapGrowingPercent: number;
  readonly shutdownTimeoutMs: number;
}
export interface GatewayConfig {
  readonly dataDir: string;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly mqtt: MqttConfig;
  readonly http: HttpConfig;
  readonly ingest: IngestConfig;
  readonly log: LogConfig;
  readonly window: WindowConfig;
  readonly sinks: SinksConfig;
  readonly runtime: RuntimeConfig;
  readonly tls: TlsConfig;
  readonly pushProxy: PushProxyConfig;
}
export interface TlsConfig {
  readonly certFile: string | null;
  readonly keyFile: string | null;
  readonly caFile: string | null;
}
/** `pulsegate push-proxy`; paths resolved at load. */
export interface PushProxyConfig {
  readonly dataDir: string;
  readonly host: string;
  readonly port: number;
  readonly gatewayUrl: string;
  readonly gatewayToken: string | null;
  readonly vapidKeyFile: string;
  readonly vapidSubject: string | null;
  readonly handoffTtlMs: number;
  readonly sweepSchedule: string;
  readonly endedRetentionMs: number;
  readonly maxHandoffs: number;
  readonly maxStreams: number;
  readonly maxQueuedEventsPerHandoff: number;
  readonly pushTtlSeconds: number;
  readonly pushTimeoutMs: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
}

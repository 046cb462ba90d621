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
  /** Sensor publishes nobody subscribed to are taken off the connection before aedes parses them (publish-fast-path.ts). */
  readonly fastPublish: boolean;
  /** Topic filters routed like an ordinary broker (no ingest, no log); validated by load-config. */
  readonly passthrough: readonly string[];
  readonly passthroughMaxRetained: number;
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
  readonly allowAnonymous: boolean;
  readonly sqlTimeoutMs: number;
  readonly console: boolean;
}
export interface IngestConfig {
  readonly maxFutureSkewMs: number;
  readonly maxPastAgeMs: number;
  readonly seqWindow: number;
  readonly maxInFlightReadings: number;
  readonly maxDevices: number;
  readonly rateLimit: { readonly publishesPerSecond: number | null; readonly burst: number };
  readonly sparkplug: SparkplugConfig;
  readonly sources: readonly SourceDefinition[];
}
/** Sparkplug B ingest (README "Sparkplug B"). */
export interface SparkplugConfig {
  readonly enabled: boolean;
  /** Kind the metrics of nodes and devices become readings of. */
  readonly kind: string;
  /** Field of the kind -> metric name; empty: each field from the metric of the same name. */
  readonly fields: Readonly<Record<string, string>>;
  readonly rebirthIntervalMs: number;
  readonly maxEdgeNodes: number;
  readonly maxDevicesPerNode: number;
  /** Primary host application id for spBv1.0/STATE/<hostId>; null = no STATE published. */
  readonly hostId: string | null;
}
/** ingest.sources[]: a topic pattern mapped to a kind (README "Real sensors"). */
export interface SourceDefinition {
  readonly topic: string;
  readonly kind: string;
  readonly fields: Readonly<Record<string, string>>;
  readonly tsPath: string | null;
  readonly tsFormat: 'ms' | 's' | 'iso8601' | null;
  readonly seqPath: string | null;
  readonly dedupHorizonMs: number;
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
  readonly maxBatchesPerWrite: number;
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
  readonly alerts: AlertsConfig;
  readonly delivery: DeliveryConfig;
  /** Kinds defined in the config, by name (the built-in ones are in kinds/builtin.yaml). */
  readonly kinds: Readonly<Record<string, KindDefinition>>;
  readonly pushProxy: PushProxyConfig;
}
export type Duration = number | string;
export interface AlertRuleConfig {
  readonly id: string;
  readonly kind: 'threshold' | 'silence' | 'loss';
  readonly severity: 'info' | 'warning' | 'critical';
  readonly sensorKind?: string;
  readonly devices: string;
  readonly description?: string;
  readonly window?: Duration;
  readonly aggregate?: string;
  readonly where?: Readonly<Record<string, string>>;
  readonly above?: number;
  readonly below?: number;
  readonly clear?: number;
  readonly for?: Duration;
  readonly clearFor?: Duration;
  readonly after?: Duration;
  readonly minReadings?: number;
}
export interface AlertsConfig {
  readonly enabled: boolean;
  readonly defaultRules: boolean;
  readonly rules: readonly AlertRuleConfig[];
  readonly maxKeys: number;
  readonly silenceSchedule: string;
}
/** kinds.<name>, as the schema leaves it (defaults filled in). */
export interface KindDefinition {
  readonly measurement?: string;
  readonly fields: Readonly<Record<string, FieldDefinition>>;
  readonly tags: readonly string[];
  readonly window: {
    readonly groupBy: readonly string[];
    readonly aggregates: readonly { readonly field?: string; readonly ops: readonly string[] }[];
    readonly sizesMs: readonly number[] | null;
  };
  /** Only in kinds/builtin.yaml: the kind's protobuf messages. */
  readonly proto?: { readonly reading: string; readonly batch: string; readonly batchField: string };
}
export interface FieldDefinition {
  readonly type: 'int' | 'float' | 'enum' | 'bool' | 'string';
  readonly required: boolean;
  readonly unit?: string;
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
  readonly maxLength?: number;
  /** Only in kinds/builtin.yaml. */
  readonly protoName?: string;
}
export interface TlsConfig {
  readonly certFile: string | null;
  readonly keyFile: string | null;
  readonly caFile: string | null;
}
export interface WebhookConfig {
  readonly name: string;
  readonly url: string;
  readonly filter: { readonly sensorKinds: readonly string[]; readonly rules: readonly string[]; readonly minSeverity: 'info' | 'warning' | 'critical' };
  readonly secretFile: string | null;
  readonly secretEnv: string | null;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  readonly retryInitialMs: number;
  readonly retryMaxMs: number;
  /**
   * The signing secret, read by the config loader from secretFile or secretEnv. Not enumerable:
   * `check-config` and logs of the config never print it.
   */
  readonly secret: string;
}
export interface DeliveryConfig {
  readonly webhooks: readonly WebhookConfig[];
  readonly heartbeatMs: number;
  readonly retryMs: number;
  readonly lagWarnMs: number;
  readonly maxClients: number;
  readonly clientBufferBytes: number;
  readonly stallTimeoutMs: number;
  readonly longPollMaxWaitMs: number;
  readonly longPollMaxEvents: number;
  readonly auth: DeliveryAuthConfig;
  readonly streams: Readonly<Record<string, StaticStreamConfig>>;
}
export interface DeliveryAuthConfig {
  readonly jwtSecretFile: string | null;
  readonly jwtPublicKeyFile: string | null;
  readonly issuer: string | null;
  readonly audience: string | null;
}
export interface StaticStreamConfig {
  readonly source: 'alerts' | 'windows';
  readonly kinds: readonly string[];
  readonly devices: readonly string[];
  readonly rules: readonly string[];
  readonly minSeverity: 'info' | 'warning' | 'critical' | null;
  readonly where: string | null;
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

/**
 * The one configuration schema (JSON Schema, validated with ajv, additionalProperties: false,
 * defaults filled in). README.md "Configuration reference" documents every key; a unit test
 * checks that it does.
 */
const port = { type: 'integer', minimum: 0, maximum: 65535 } as const;
const positiveMs = { type: 'integer', minimum: 1 } as const;

export const configSchema = {
  type: 'object',
  additionalProperties: false,
  default: {},
  properties: {
    dataDir: { type: 'string', minLength: 1, default: './data' },
    logLevel: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
    mqtt: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        host: { type: 'string', default: '0.0.0.0' },
        port: { ...port, default: 1883 },
        /** MQTT over WebSocket; null disables it. */
        wsPort: { anyOf: [port, { type: 'null' }], default: null },
        maxPayloadBytes: { type: 'integer', minimum: 64, maximum: 268_435_455, default: 262_144 },
        allowAnonymous: { type: 'boolean', default: false },
        /** YAML/JSON file of device credentials (see README "Devices and credentials"). */
        credentialsFile: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
        /** Bytes of a rejected publish's payload kept in its dead-letter record (its length is always kept). */
        deadLetterPayloadBytes: { type: 'integer', minimum: 0, maximum: 1_048_576, default: 4096 },
        /** MQTT over TLS (8883 is the usual port); null disables it. Needs tls.certFile/keyFile. */
        tlsPort: { anyOf: [port, { type: 'null' }], default: null },
        /** MQTT over secure WebSocket; null disables it. Needs tls.certFile/keyFile. */
        wssPort: { anyOf: [port, { type: 'null' }], default: null },
        /** Client certificates (mTLS) on the TLS listeners; a verified certificate's CN is the device id. */
        clientCertificates: { enum: ['off', 'optional', 'required'], default: 'off' },
        /** "username-prefix": a credentialed client id is <username> or <username>:<suffix> (no session takeover); "any": unbound. */
        clientIdPolicy: { enum: ['username-prefix', 'any'], default: 'username-prefix' },
        /** Password checks and failed-login throttling (see README "Devices and credentials"). */
        auth: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            /** Worker threads that run scrypt (never libuv's pool, which the log's fsync uses). */
            hashWorkers: { type: 'integer', minimum: 1, maximum: 16, default: 1 },
            /** Logins waiting for a worker; past it a CONNECT is refused with CONNACK 3. */
            maxPendingLogins: { type: 'integer', minimum: 0, maximum: 100_000, default: 32 },
            maxFailuresPerUsername: { type: 'integer', minimum: 1, default: 5 },
            maxFailuresPerIp: { type: 'integer', minimum: 1, default: 20 },
            failureWindowMs: { ...positiveMs, default: 60_000 },
            lockoutMs: { ...positiveMs, default: 1000 },
            maxLockoutMs: { ...positiveMs, default: 60_000 },
            /** Usernames and addresses with failed logins remembered (each); the oldest are forgotten. */
            maxTracked: { type: 'integer', minimum: 1, default: 10_000 },
          },
        },
        /**
         * Largest remaining length of an MQTT packet; a connection declaring more is closed before
         * the packet is buffered. null = the larger of 1 MiB and maxPayloadBytes + 1 KiB.
         */
        maxPacketBytes: { anyOf: [{ type: 'integer', minimum: 64, maximum: 268_435_455 }, { type: 'null' }], default: null },
        /** Largest remaining length of a connection's first packet (the CONNECT, read before authentication). */
        maxConnectBytes: { type: 'integer', minimum: 64, maximum: 268_435_455, default: 16_384 },
        /** Longest an MQTT packet may take to arrive once its first byte was read (whatever the keepalive); also the longest a new connection may stay silent. */
        packetTimeoutMs: { ...positiveMs, default: 30_000 },
      },
    },
    http: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        host: { type: 'string', default: '0.0.0.0' },
        port: { ...port, default: 8080 },
        maxQueryRows: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 10_000 },
        /** Store queries (/v1/readings, /v1/windows) running at once; the rest wait in a FIFO. */
        maxConcurrentQueries: { type: 'integer', minimum: 1, maximum: 1024, default: 4 },
        /** Queries waiting for a slot; past it a query is refused at once with 503 (policy: reject newest). */
        maxQueuedQueries: { type: 'integer', minimum: 0, maximum: 100_000, default: 64 },
        /** Longest wait in that queue before the query is refused with 503. */
        queryQueueTimeoutMs: { ...positiveMs, default: 5000 },
        /** Serve HTTPS instead of HTTP on http.port, with tls.certFile/keyFile. */
        tls: { type: 'boolean', default: false },
      },
    },
    ingest: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** A reading's event time may be at most this far ahead of the gateway's clock. */
        maxFutureSkewMs: { ...positiveMs, default: 300_000 },
        /** ...and at most this far behind it (reconnect backlogs are allowed). */
        maxPastAgeMs: { ...positiveMs, default: 7 * 86_400_000 },
        /** Out-of-order tolerance of the (device, seq) dedup, in sequence numbers. */
        seqWindow: { type: 'integer', minimum: 32, maximum: 4096, multipleOf: 32, default: 256 },
        /** Readings taken in but not yet durable and processed; past it QoS 0 waits too (backpressure). */
        maxInFlightReadings: { type: 'integer', minimum: 1, default: 10_000 },
        /** Devices tracked for dedup; the least recently seen is evicted past this. */
        maxDevices: { type: 'integer', minimum: 1, default: 100_000 },
        /** Per-device publish budget (token bucket); over it a publish is rejected as rate_limited. */
        rateLimit: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            /** null = no limit. */
            publishesPerSecond: { anyOf: [{ type: 'number', exclusiveMinimum: 0 }, { type: 'null' }], default: null },
            burst: { type: 'integer', minimum: 1, default: 100 },
          },
        },
      },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** Defaults to <dataDir>/log. */
        dir: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
        segmentMaxBytes: { type: 'integer', minimum: 4096, default: 64 * 1024 * 1024 },
        groupCommitIntervalMs: { type: 'integer', minimum: 0, maximum: 1000, default: 2 },
        groupCommitMaxBytes: { type: 'integer', minimum: 1024, default: 1024 * 1024 },
        checkpointIntervalMs: { ...positiveMs, default: 10_000 },
        retentionMs: { ...positiveMs, default: 7 * 86_400_000 },
        /** node-cron expression for the retention job. */
        retentionSchedule: { type: 'string', minLength: 9, default: '*/5 * * * *' },
        /** Above this many bytes of log on disk, ingest withholds acks (backpressure); null = off. */
        diskHighWaterBytes: { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'null' }], default: null },
        /** Skip over mid-log corruption at startup instead of refusing to start. */
        skipCorrupt: { type: 'boolean', default: false },
      },
    },
    window: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** Tumbling window sizes per kind; kinds not listed use `defaultSizesMs`. */
        defaultSizesMs: { type: 'array', items: positiveMs, minItems: 1, default: [10_000, 60_000] },
        sizesMs: {
          type: 'object',
          additionalProperties: { type: 'array', items: positiveMs, minItems: 1 },
          default: {},
        },
        /** Windows first fire when a device's max event time minus this passes their end. */
        outOfOrdernessMs: { type: 'integer', minimum: 0, default: 0 },
        /** After firing, a window still takes readings this late (event time) and is re-emitted corrected. */
        allowedLatenessMs: { type: 'integer', minimum: 0, default: 30_000 },
        /** A key with no new readings for this long (by the clock) has its windows emitted. */
        idleTimeoutMs: { ...positiveMs, default: 60_000 },
        maxOpenWindowsPerKey: { type: 'integer', minimum: 1, default: 64 },
        /** Devices holding window state; past it the least recently active is emitted and forgotten ("emit-lru"). */
        maxDevices: { type: 'integer', minimum: 1, default: 100_000 },
        /** A reading moves its device's watermark at most this far past its receive time (the gateway's clock). */
        maxWatermarkSkewMs: { type: 'integer', minimum: 0, default: 5_000 },
        /** Forgotten devices whose horizon (which of their windows were emitted) is kept; beyond, the oldest goes ("drop-oldest"). */
        maxForgottenDevices: { type: 'integer', minimum: 0, default: 400_000 },
      },
    },
    sinks: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** InfluxDB URL with the database in the path, e.g. http://127.0.0.1:8086/pulsegate; null = embedded store. */
        influxUrl: { anyOf: [{ type: 'string', pattern: '^https?://' }, { type: 'null' }], default: null },
        rawRetention: { type: 'string', pattern: '^(INF|[0-9]+[hdw])$', default: '7d' },
        windowRetention: { type: 'string', pattern: '^(INF|[0-9]+[hdw])$', default: '520w' },
        writeRawReadings: { type: 'boolean', default: true },
        batchMaxPoints: { type: 'integer', minimum: 1, default: 5000 },
        flushIntervalMs: { ...positiveMs, default: 1000 },
        retryInitialMs: { ...positiveMs, default: 200 },
        retryMaxMs: { ...positiveMs, default: 30_000 },
        healthIntervalMs: { ...positiveMs, default: 5000 },
        /** On shutdown, how long to keep delivering pending batches before leaving them in the log. */
        shutdownDrainMs: { type: 'integer', minimum: 0, default: 10_000 },
        /** Embedded store file; defaults to <dataDir>/store.sqlite. */
        embeddedPath: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
      },
    },
    runtime: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /**
         * V8's heap growth after each full GC, in percent (100: the heap may double); 0 keeps V8's
         * own factor (up to 4x), which lets short-lived garbage pile up to far more than the live data.
         */
        heapGrowingPercent: { type: 'integer', minimum: 0, maximum: 1000, default: 100 },
        /** After SIGTERM/SIGINT, the process exits within this, cleanly or (past it) with code 1. */
        shutdownTimeoutMs: { ...positiveMs, default: 15_000 },
      },
    },
    /** Files of the TLS listeners (mqtt.tlsPort, mqtt.wssPort, http.tls); see README "TLS". */
    tls: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** PEM server certificate (then its intermediates). */
        certFile: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
        /** PEM private key of certFile, unencrypted. */
        keyFile: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
        /** PEM bundle of the CAs that sign device certificates (mqtt.clientCertificates). */
        caFile: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
      },
    },
    /** The push proxy process (`pulsegate push-proxy`), see README "Push proxy". The gateway itself ignores this section. */
    pushProxy: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** Its SQLite store of hand-offs and pushes; defaults to <dataDir>/push-proxy. */
        dataDir: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
        host: { type: 'string', default: '0.0.0.0' },
        port: { ...port, default: 8090 },
        /** Base URL of the gateway whose SSE streams the proxy holds. */
        gatewayUrl: { type: 'string', pattern: '^https?://[^/?#]+(/[^?#]*)?$', default: 'http://127.0.0.1:8080' },
        /** Sent as `Authorization: Bearer <token>` to the gateway's streams; null = anonymous. */
        gatewayToken: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
        /** JSON file of the VAPID key pair (`pulsegate push-proxy generate-vapid-keys --out FILE`); defaults to <pushProxy.dataDir>/vapid.json. */
        vapidKeyFile: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
        /** VAPID subject (RFC 8292 section 2.1): a mailto: address of the operator; required by `pulsegate push-proxy`. */
        vapidSubject: { anyOf: [{ type: 'string', pattern: '^mailto:[^@\\s]+@[^@\\s]+$' }, { type: 'null' }], default: null },
        /** A hand-off ends this long after it was made. */
        handoffTtlMs: { ...positiveMs, default: 12 * 3_600_000 },
        /** node-cron expression of the sweep of expired hand-offs. */
        sweepSchedule: { type: 'string', minLength: 9, default: '* * * * *' },
        /** Ended hand-offs stay readable (GET /v1/handoffs/:id) this long, then the sweep deletes them. */
        endedRetentionMs: { ...positiveMs, default: 3_600_000 },
        /** Hand-offs held at once; one more is refused with 503 (policy: reject newest). */
        maxHandoffs: { type: 'integer', minimum: 1, default: 100_000 },
        /** Distinct stream + filter connections to the gateway at once; a hand-off needing one more is refused with 503. */
        maxStreams: { type: 'integer', minimum: 1, default: 1000 },
        /** Events waiting to be pushed per hand-off; while one is full its stream stops reading (backpressure). */
        maxQueuedEventsPerHandoff: { type: 'integer', minimum: 1, default: 256 },
        /** Web Push TTL header (RFC 8030 section 5.2): how long the push service keeps an undelivered push. */
        pushTtlSeconds: { type: 'integer', minimum: 0, maximum: 2_419_200, default: 3600 },
        /** Longest wait for the push service's answer. */
        pushTimeoutMs: { ...positiveMs, default: 10_000 },
        /** First retry delay after a 429, 5xx or network error without Retry-After (doubles, jittered)... */
        retryInitialMs: { ...positiveMs, default: 1000 },
        /** ...up to this; also the reconnect delays of the gateway streams. */
        retryMaxMs: { ...positiveMs, default: 60_000 },
      },
    },
  },
} as const;

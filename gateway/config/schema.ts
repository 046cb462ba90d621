/**
 * The one configuration schema (JSON Schema, validated with ajv, additionalProperties: false,
 * defaults filled in). README.md "Configuration reference" documents every key; a unit test
 * checks that it does.
 */
const port = { type: 'integer', minimum: 0, maximum: 65535 } as const;
const positiveMs = { type: 'integer', minimum: 1 } as const;
/** A duration: milliseconds, or a string such as "500ms", "30s", "2m", "1h". */
const duration = { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: '^[0-9]+(ms|s|m|h)$' }] } as const;

/** One alert rule; which keys apply depends on `kind` (checked with the kinds, see alert-rules.ts). */
const alertRule = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'kind'],
  properties: {
    id: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
    kind: { enum: ['threshold', 'silence', 'loss'] },
    severity: { enum: ['info', 'warning', 'critical'], default: 'warning' },
    /** Sensor kind the rule watches (threshold: required; silence, loss: all kinds when omitted). */
    sensorKind: { type: 'string', minLength: 1 },
    /** Device id glob (`*`, `?`); default every device. */
    devices: { type: 'string', minLength: 1, maxLength: 256, default: '*' },
    description: { type: 'string', maxLength: 500 },
    /** threshold: window size (one of the kind's window sizes; default its first); loss: bucket size (default 60 s). */
    window: duration,
    /** threshold: the window aggregate column, e.g. bpm_mean, count, speedKmh_max. */
    aggregate: { type: 'string', minLength: 1 },
    /** threshold: only windows whose group has these values (e.g. { vehicleClass: TRUCK }); other group fields stay part of the key. */
    where: { type: 'object', additionalProperties: { type: 'string' } },
    /** threshold: fires when the value is above / below this (exactly one); loss: fires above this fraction (0..1). */
    above: { type: 'number' },
    below: { type: 'number' },
    /** threshold, loss: the clear level (hysteresis); default the fire level (threshold) or half of it (loss). */
    clear: { type: 'number' },
    /** threshold: the breach must last this long in event time before firing (default 0). */
    for: duration,
    /** threshold: the value must stay past the clear level this long before resolving (default 0). */
    clearFor: duration,
    /** silence: no reading from a device for this long by the gateway's clock. */
    after: duration,
    /** loss: buckets with fewer readings plus missing ones than this are not judged (default 20). */
    minReadings: { type: 'integer', minimum: 1 },
  },
} as const;

/** One outbound webhook of delivery.webhooks (README "Webhooks"). */
const webhook = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'url'],
  properties: {
    /** Names its log consumer (webhook-<name>) and its metrics; unique. */
    name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
    url: { type: 'string', pattern: '^https?://[^\\s]+$' },
    /** Which alerts are POSTed; an empty list matches every value. */
    filter: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        sensorKinds: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
        rules: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
        minSeverity: { enum: ['info', 'warning', 'critical'], default: 'info' },
      },
    },
    /** The HMAC-SHA256 signing secret: a file holding it (trailing newline ignored)... */
    secretFile: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
    /** ...or the name of an environment variable holding it (exactly one of the two). */
    secretEnv: { anyOf: [{ type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }, { type: 'null' }], default: null },
    /** One POST, connect to the end of the answer. */
    timeoutMs: { type: 'integer', minimum: 1, default: 10_000 },
    /** Attempts (in one run of the gateway) before the alert is dead-lettered. */
    maxAttempts: { type: 'integer', minimum: 1, default: 8 },
    retryInitialMs: { type: 'integer', minimum: 1, default: 1000 },
    retryMaxMs: { type: 'integer', minimum: 1, default: 60_000 },
  },
} as const;

/** One field of a kind; which keys apply depends on `type` (checked after the schema, see kinds/kind-definitions.ts). */
export const fieldDefinitionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: {
    type: { enum: ['int', 'float', 'enum', 'bool', 'string'] },
    /** A reading without it is rejected as invalid. */
    required: { type: 'boolean', default: false },
    /** Unit of the value (e.g. "W"), for people and dashboards. */
    unit: { type: 'string', minLength: 1, maxLength: 32 },
    /** int/float: smallest and largest valid value (absent = unbounded). */
    min: { type: 'number' },
    max: { type: 'number' },
    /** enum: the valid values. */
    values: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 128 }, minItems: 1, uniqueItems: true },
    /** string: longest valid value, in characters. */
    maxLength: { type: 'integer', minimum: 1, maximum: 1024 },
  },
} as const;

/** A sensor kind: its fields, tags, measurement and windows (README "Real sensors"). */
export const kindDefinitionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['fields'],
  properties: {
    /** Table (InfluxDB measurement) of raw readings; windows go to <measurement>_window. Default: the name with - as _. */
    measurement: { type: 'string', pattern: '^[a-z][a-z0-9_]{0,62}$' },
    /** Fields of a reading besides seq and ts, by name (camelCase). */
    fields: { type: 'object', minProperties: 1, additionalProperties: fieldDefinitionSchema },
    /** Fields stored as tags (indexed, string-valued) for raw readings. */
    tags: { type: 'array', items: { type: 'string' }, uniqueItems: true, default: [] },
    window: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        /** Fields besides the device whose values key a window (like the bridge's vehicle class and lane). */
        groupBy: { type: 'array', items: { type: 'string' }, uniqueItems: true, default: [] },
        /** What each window keeps: `{ ops: [count] }` counts readings, `{ field, ops }` aggregates a numeric field. */
        aggregates: {
          type: 'array',
          minItems: 1,
          default: [{ ops: ['count'] }],
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['ops'],
            properties: {
              field: { type: 'string' },
              ops: { type: 'array', minItems: 1, uniqueItems: true, items: { enum: ['count', 'min', 'max', 'sum', 'mean', 'last'] } },
            },
          },
        },
        /** Tumbling window sizes of this kind; window.sizesMs.<kind> overrides; null = window.defaultSizesMs. */
        sizesMs: { anyOf: [{ type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 1 }, { type: 'null' }], default: null },
      },
    },
  },
} as const;

/** One entry of ingest.sources: a topic pattern, its kind, and where the fields come from in its JSON payload. */
export const sourceDefinitionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['topic', 'kind', 'fields'],
  properties: {
    /** Topic pattern: literal segments, `+` (any one segment) and named segments; `{deviceId}` (exactly once) is the device. */
    topic: { type: 'string', minLength: 1, maxLength: 512 },
    /** The kind (built-in or kinds.<name>) its readings are. */
    kind: { type: 'string', minLength: 1 },
    /** Field of the kind -> path in the JSON payload (dot-separated keys, numbers index arrays), e.g. ENERGY.Power. */
    fields: { type: 'object', additionalProperties: { type: 'string', minLength: 1, maxLength: 256 } },
    /** Path of the event time; null = the arrival time (the gateway's clock when the publish arrived). */
    tsPath: { anyOf: [{ type: 'string', minLength: 1, maxLength: 256 }, { type: 'null' }], default: null },
    /** Format of the value at tsPath: ms or s since the epoch, or an ISO 8601 text (no offset = UTC). */
    tsFormat: { anyOf: [{ enum: ['ms', 's', 'iso8601'] }, { type: 'null' }], default: null },
    /** Path of an increasing sequence number (integer >= 1); null = the device sends none (content-hash dedup, no gap accounting). */
    seqPath: { anyOf: [{ type: 'string', minLength: 1, maxLength: 256 }, { type: 'null' }], default: null },
    /** Without seqPath: a publish with the same bytes as one of the same device this recently is dropped as a duplicate; 0 = off. */
    dedupHorizonMs: { type: 'integer', minimum: 0, maximum: 3_600_000, default: 2000 },
  },
} as const;

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
        /** Longest an MQTT packet may take to arrive once its first byte was read (whatever the keepalive); also the longest a new connection may stay silent, and the longest a client may leave what it is sent unread. */
        packetTimeoutMs: { ...positiveMs, default: 30_000 },
        /** Sensor publishes nobody subscribed to are read off the connection in place, before the broker's parser (README "Benchmarks"). */
        fastPublish: { type: 'boolean', default: true },
        /** Topic filters the broker routes like an ordinary broker (no ingest, no log); empty = off. See README "Passthrough". */
        passthrough: { type: 'array', items: { type: 'string' }, default: [] },
        /** Retained messages kept on passthrough topics; past it a retained publish on a new topic is delivered, not retained. */
        passthroughMaxRetained: { type: 'integer', minimum: 0, maximum: 10_000_000, default: 10_000 },
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
        /** Streams and long-poll without a bearer token (the demo); otherwise a JWT is required (delivery.auth). */
        allowAnonymous: { type: 'boolean', default: false },
        /** Longest a POST /v1/query query may run; then its process is killed and the query answers 422. */
        sqlTimeoutMs: { type: 'integer', minimum: 10, maximum: 600_000, default: 5000 },
        /** Serve the web console at / (static files of console/). */
        console: { type: 'boolean', default: true },
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
        /** Sparkplug B v3.0 edge nodes publishing on spBv1.0/... (README "Sparkplug B"). */
        sparkplug: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            enabled: { type: 'boolean', default: false },
            /** Kind whose fields the metrics become. */
            kind: { type: 'string', minLength: 1, default: 'heart-rate' },
            /** Field of the kind -> Sparkplug metric name; {} = each field from the metric of the same name. */
            fields: { type: 'object', additionalProperties: { type: 'string', minLength: 1 }, default: {} },
            /** Shortest time between two rebirth requests (NCMD Node Control/Rebirth) to one edge node. */
            rebirthIntervalMs: { ...positiveMs, default: 10_000 },
            /** Edge nodes whose births are held; past it the least recently heard one is forgotten ("evict-lru"). */
            maxEdgeNodes: { type: 'integer', minimum: 1, default: 1000 },
            /** Devices born under one edge node; a DBIRTH past it is rejected as sparkplug_limit. */
            maxDevicesPerNode: { type: 'integer', minimum: 1, default: 1000 },
            /** Primary host id: the gateway publishes a retained spBv1.0/STATE/<hostId> (online, then offline at shutdown); null = none. */
            hostId: { anyOf: [{ type: 'string', pattern: '^[A-Za-z0-9_.-]+$' }, { type: 'null' }], default: null },
          },
        },
        /** Topics of devices that do not speak sensors/<kind>/<id> (see README "Real sensors"); the first that matches wins. */
        sources: { type: 'array', items: sourceDefinitionSchema, default: [] },
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
        /** While the embedded store lags, waiting batches written in one transaction; 1 = one at a time. */
        maxBatchesPerWrite: { type: 'integer', minimum: 1, maximum: 16, default: 4 },
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
    /** Alert rules over windows, silence and loss in transit; see README "Alerts". */
    alerts: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        enabled: { type: 'boolean', default: true },
        /** The built-in rules for the built-in kinds (README "Alerts"), before `rules`; a rule of `rules` with the same id replaces one. */
        defaultRules: { type: 'boolean', default: true },
        rules: { type: 'array', items: alertRule, default: [] },
        /** Tracked (rule, key) pairs and silence devices; past it an idle (ok) key is forgotten, else the new key is refused ("evict-ok-then-refuse"). */
        maxKeys: { type: 'integer', minimum: 1, default: 100_000 },
        /** node-cron schedule (with a seconds field) of the silence check. */
        silenceSchedule: { type: 'string', minLength: 1, default: '*/5 * * * * *' },
      },
    },
    /** Where alerts go besides MQTT and HTTP; see README "Webhooks". */
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
    /** The SSE hub and long-poll (gateway/delivery/); see README "Streams". */
    delivery: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        webhooks: { type: 'array', items: webhook, default: [] },
        /** A comment line is sent to every stream this often. */
        heartbeatMs: { ...positiveMs, default: 15_000 },
        /** The `retry:` field sent once per stream: how long an EventSource waits before reconnecting. */
        retryMs: { ...positiveMs, default: 3000 },
        /** A client further behind the head than this (append time of the records) is sent `event: lag`. */
        lagWarnMs: { ...positiveMs, default: 5000 },
        /** Open streams and waiting long-polls together; one more is refused with 503 + Retry-After. */
        maxClients: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 10_000 },
        /** Bytes a client's connection may hold unsent; beyond, it is closed (overflow) and resumes from the log. */
        clientBufferBytes: { type: 'integer', minimum: 1024, default: 1_048_576 },
        /** A client whose unsent bytes do not drain for this long is closed as stalled. */
        stallTimeoutMs: { ...positiveMs, default: 30_000 },
        /** Upper bound of `waitMs` of /v1/alerts/poll. */
        longPollMaxWaitMs: { ...positiveMs, default: 30_000 },
        /** Upper bound of `limit` of /v1/alerts/poll. */
        longPollMaxEvents: { type: 'integer', minimum: 1, maximum: 100_000, default: 1000 },
        /** Bearer tokens (JWT) of subscribers; see README "Streams". */
        auth: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            /** File holding the shared secret of HS256/HS384/HS512 tokens. */
            jwtSecretFile: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
            /** PEM public key (SPKI) of RSA, ECDSA or EdDSA tokens (RS256, PS256, ES256, EdDSA, ...). */
            jwtPublicKeyFile: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
            /** Required `iss`; null = not checked. */
            issuer: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
            /** Required `aud`; null = not checked. */
            audience: { anyOf: [{ type: 'string', minLength: 1 }, { type: 'null' }], default: null },
          },
        },
        /** Static streams served at /v1/streams/<name>: filters the client cannot widen. */
        streams: {
          type: 'object',
          default: {},
          propertyNames: { pattern: '^[a-z][a-z0-9_-]{0,63}$', not: { enum: ['alerts', 'windows'] } },
          additionalProperties: {
            type: 'object',
            additionalProperties: false,
            required: ['source'],
            properties: {
              source: { enum: ['alerts', 'windows'] },
              kinds: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
              devices: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
              rules: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
              minSeverity: { anyOf: [{ enum: ['info', 'warning', 'critical'] }, { type: 'null' }], default: null },
              where: { anyOf: [{ type: 'string', minLength: 1, maxLength: 2000 }, { type: 'null' }], default: null },
            },
          },
        },
      },
    },
    /** Sensor kinds besides the built-in ones (kinds/builtin.yaml), by name; see README "Real sensors". */
    kinds: { type: 'object', default: {}, additionalProperties: kindDefinitionSchema },
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

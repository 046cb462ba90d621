/**
 * Composition root: builds each tier from its config slice, wires them in data-flow order,
 * recovers from the log, and shuts down in reverse order. No tier logic lives here.
 */
import { setFlagsFromString } from 'node:v8';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import { systemClock, type Clock } from './clock.js';
import type { GatewayConfig } from './config/config.js';
import { AlertEngine } from './alerts/alert-engine.js';
import { compileAlertRules } from './config/alert-rules.js';
import { GatewayError, isGatewayError } from './errors.js';
import { createEventBus, type EventBus } from './events.js';
import { alertRoutes } from './http/alert-routes.js';
import { consoleRoutes } from './http/console-routes.js';
import { createHttpServer } from './http/http-server.js';
import { createReadiness } from './http/readiness.js';
import { loadCredentials } from './ingest/credentials.js';
import { createIngestMetrics } from './ingest/ingest-metrics.js';
import { createIngestRecordReader } from './ingest/ingest-record.js';
import { createMqttIngest, type MqttIngest } from './ingest/mqtt-ingest.js';
import { createPayloadDecoder } from './ingest/payload-decoder.js';
import { createSparkplugIngest, sparkplugStateMessage } from './ingest/sparkplug.js';
import { startRetentionJob } from './jobs/retention-job.js';
import { createSilenceJob } from './jobs/silence-job.js';
import { startStoreRetentionJob } from './jobs/store-retention-job.js';
import { createMqttRepublish } from './delivery/mqtt-republish.js';
import { createWebhookSender } from './delivery/webhook.js';
import { encodeDeadLetter } from './log/dead-letter.js';
import { createLogConsumer, type LogConsumer } from './log/log-consumer.js';
import { createConfiguredKindRegistry, type KindRegistry } from './kinds/registry.js';
import { createTopicRouter } from './ingest/topic-router.js';
import { OpenedResources, Timers } from './lifecycle.js';
import { createCheckpointStore } from './log/checkpoint-store.js';
import { lockDirectories } from './log/data-dir-lock.js';
import { createMessageLog, type MessageLogOptions } from './log/message-log.js';
import { createOutbox, outgoingCoverage } from './log/outbox.js';
import { createAlertSenderLog, createWindowSenderLog, primeSenderLogs, senderLogsPrimeFrom } from './log/sender-log.js';
import { RECORD_TYPES } from './log/types.js';
import { createRegistry } from './metrics.js';
import { createCheckpointer } from './pipeline/checkpointer.js';
import { DeviceStats, deviceRoutes } from './pipeline/device-stats.js';
import { deadLetterLateReadings } from './pipeline/late-readings.js';
import { ReadingPipeline } from './pipeline/reading-pipeline.js';
import { recover, replayStart } from './pipeline/recovery.js';
import { SequenceTracker } from './pipeline/sequence-tracker.js';
import { coversOfBatch, encodeBatch } from './sinks/batch-codec.js';
import { createHealthSampler } from './sinks/health-sampler.js';
import { drainOutbox } from './sinks/outbox-drain.js';
import { SinkBatcher, subscribeSinkBatcher } from './sinks/sink-batcher.js';
import { createSinkMetrics } from './sinks/sink-metrics.js';
import { createThreadedSink } from './sinks/sink-thread.js';
import { createInfluxQlRunner } from './sinks/sql/influxql-runner.js';
import { createSqlRunner } from './sinks/sql/sql-runner.js';
import { createTlsMetrics, loadTlsMaterial, logTlsWarnings, readTlsMaterial } from './tls.js';
import { createWindowEngine, idleTickIntervalMs } from './window/window-engine.js';
import { registerWindowMetrics } from './window/window-metrics.js';
import { alertTopic, type AlertTransition } from './wire/alert.js';
import { toWindowTransition } from './wire/window.js';
import { createDeliveryHub } from './delivery/delivery-hub.js';
import { deliveryRoutes } from './delivery/delivery-routes.js';
import { createSubscriberAuth } from './delivery/subscriber-auth.js';
import { tailLog } from './log/tail-reader.js';

export interface GatewayHandle {
  readonly config: GatewayConfig;
  readonly ports: { readonly mqtt: number; readonly ws: number | null; readonly http: number; readonly mqtts: number | null; readonly wss: number | null };
  readonly registry: Registry;
  readonly logger: Logger;
  /** Idempotent graceful shutdown: drain, checkpoint, flush, close. */
  close(): Promise<void>;
  /**
   * Re-reads tls.certFile/keyFile/caFile (e.g. renewed certificates) for new connections; on a
   * problem the current ones stay in use. Returns the problems (empty = reloaded).
   */
  reloadTls(): readonly string[];
  /** The gateway's event bus (device.status, window.emitted, ...). */
  readonly events: EventBus;
}

export interface GatewayDeps {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Opens the message log's segment files (default fs.promises.open): a seam for fault-injecting tests. */
  readonly openLogFile?: MessageLogOptions['openFile'];
  /** Called with the event bus before recovery, so a subscriber also sees the replayed events. */
  readonly observeEvents?: (events: EventBus) => void;
}

/**
 * Starts the gateway: first takes the exclusive lock of the data directory (and of log.dir when
 * it lies outside it), so that a second gateway on the same files is refused before it touches
 * them; the locks are released by close(), or at once when startup fails.
 */
export async function startGateway(config: GatewayConfig, deps: GatewayDeps = {}): Promise<GatewayHandle> {
  const logger = deps.logger ?? pino({ level: config.logLevel, base: { service: 'pulsegate' } });
  const locks = await lockDirectories(config.dataDir, config.log.dir, logger);
  const opened = new OpenedResources(logger);
  opened.add('the data directory locks', locks, () => locks.release());
  return opened.run(() => startTiers(config, deps, logger, opened, () => locks.release()));
}

/** Opens each tier in data-flow order; whatever is opened is registered in `opened`, for rollback. */
async function startTiers(config: GatewayConfig, deps: GatewayDeps, logger: Logger, opened: OpenedResources, releaseLocks: () => Promise<void>): Promise<GatewayHandle> {
  const clock = deps.clock ?? systemClock;
  const kinds = createConfiguredKindRegistry(config.kinds);
  const router = createTopicRouter({ kinds, sources: config.ingest.sources, limits: config.ingest });
  const registry = createRegistry();
  const events = createEventBus({ logger: logger.child({ tier: 'events' }), registry });
  deps.observeEvents?.(events);
  const ingestMetrics = createIngestMetrics(registry, [...kinds.keys()]);
  const credentials = config.mqtt.credentialsFile === null ? null : loadCredentials(config.mqtt.credentialsFile);
  if (!config.mqtt.allowAnonymous && credentials === null && config.mqtt.clientCertificates === 'off') {
    logger.warn('mqtt.allowAnonymous is false, no mqtt.credentialsFile is set and mqtt.clientCertificates is off: no device can connect');
  }
  const decoder = createPayloadDecoder(kinds, config.ingest);
  // Sparkplug B (ingest.sparkplug): its rebirth requests go out through the broker, once it exists.
  let sparkplugBroker: MqttIngest['broker'] | null = null;
  const sparkplug = !config.ingest.sparkplug.enabled
    ? null
    : createSparkplugIngest({
        config: config.ingest.sparkplug,
        ingest: config.ingest,
        kinds,
        clock,
        registry,
        publish: (topic, payload) => sparkplugBroker?.publish({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false }, () => undefined),
      });
  const tlsLoaded = loadTlsMaterial(config);
  logTlsWarnings(tlsLoaded.warnings, logger);
  const tls = tlsLoaded.material === null ? null : { material: tlsLoaded.material, metrics: createTlsMetrics(registry) };

  // log tier
  const log = await createMessageLog({ ...config.log, registry, logger: logger.child({ tier: 'log' }), clock, openFile: deps.openLogFile });
  opened.add('the log', log, () => log.close());
  await log.start();
  const readiness = createReadiness(log);
  const checkpoints = createCheckpointStore({ dir: config.log.dir });
  const checkpoint = await checkpoints.readLatest();

  // sink tier, behind the sender-based side of the log
  const sinkMetrics = createSinkMetrics(registry);
  const sink = createThreadedSink({ config: config.sinks, kinds, metrics: sinkMetrics, logger: logger.child({ tier: 'sinks' }) });
  opened.add('the sink thread', sink, () => sink.close());
  const outbox = createOutbox({
    log,
    destination: sink.name,
    send: (payload: Buffer) => sink.writeEncoded(payload),
    // While the embedded store lags, up to sinks.maxBatchesPerWrite (4) waiting batches go in one transaction.
    ...(config.sinks.influxUrl === null && config.sinks.maxBatchesPerWrite > 1
      ? { sendMany: (payloads: readonly Buffer[]) => sink.writeEncodedMany(payloads), maxGroupRecords: config.sinks.maxBatchesPerWrite }
      : {}),
    retry: { initialMs: config.sinks.retryInitialMs, maxMs: config.sinks.retryMaxMs },
    stateDir: config.log.dir,
    clock,
    registry,
    logger: logger.child({ tier: 'outbox' }),
  });
  opened.add('the outbox', outbox, () => outbox.close({ graceMs: 0 }));

  // pipeline: dedup -> windows, told on the event bus; the store's batches and the late readings' dead letters subscribe
  const windows = createWindowEngine({ kinds, config: config.window, clock, maxPastAgeMs: config.ingest.maxPastAgeMs });
  registerWindowMetrics(registry, windows.stats);

  // sender-based records: windows and alert transitions go to the log before anyone is told;
  // those already there from before a crash (after the checkpoint) are recognised, not appended again
  const windowLog = createWindowSenderLog(log, logger);
  const alertLog = createAlertSenderLog(log, logger);
  const alerts = createAlerts(config, kinds, clock, registry, (t) => alertLog.append(t), logger);
  // Set at shutdown: the half-filled windows emitted then are not first emissions of complete
  // windows, so the rules do not judge them (after a restart the windows continue and are judged).
  let closingWindows = false;
  const devices = new DeviceStats({ maxDevices: config.ingest.maxDevices, registry });
  const pipeline = new ReadingPipeline({ kinds, tracker: new SequenceTracker(config.ingest.seqWindow, config.ingest.maxDevices), windows, events, metrics: ingestMetrics, registry, clock, moreStages: alerts === null ? [] : [alerts], devices });
  events.on('window.emitted', (e) => windowLog.append(toWindowTransition(e.window)));
  if (alerts !== null) {
    events.on('window.emitted', (e) => {
      if (!closingWindows) alerts.onWindow(e.window, e.replay);
    });
    events.on('reading.durable', (e) => alerts.onReadings(e.readings, e.receivedAt, e.gaps, e.gapFills, e.replay));
    events.on('device.status', (e) => alerts.onDeviceStatus(e.kind, e.deviceId, e.status, e.reason, e.at, e.replay));
    alerts.onTransition((transition, offset, replay, logged) => events.emit('alert.transition', { transition, offset, replay, logged }));
  }
  const batcher = new SinkBatcher({
    maxPoints: config.sinks.batchMaxPoints,
    flushIntervalMs: config.sinks.flushIntervalMs,
    enqueue: (batch) => outbox.enqueue(encodeBatch(batch)),
    logger,
    // A publish of several readings is batched as its payload; the sink thread decodes it with these.
    payloadLimits: { maxPastAgeMs: config.ingest.maxPastAgeMs, maxFutureSkewMs: config.ingest.maxFutureSkewMs },
  });
  opened.add('the sink batcher', batcher, () => batcher.close());
  subscribeSinkBatcher(events, batcher, { writeRawReadings: config.sinks.writeRawReadings });
  deadLetterLateReadings(events, log, clock);

  // recovery: latest checkpoint, then replay every ingest record after it; the window and alert
  // records already logged after the checkpoint are read first, in one pass for both
  readiness.phase = 'replaying';
  // The store's batches after the checkpoint, chained: the replay does not batch their raw readings again.
  const stored = outgoingCoverage(sink.name, replayStart(checkpoint, log), coversOfBatch);
  await primeSenderLogs(log, senderLogsPrimeFrom(checkpoint, log), [windowLog, alertLog, stored]);
  batcher.resume(stored.below);
  await recover({
    log,
    checkpoint,
    unreadableCheckpoints: checkpoints.unreadable,
    dir: config.log.dir,
    pipeline,
    reader: createIngestRecordReader(kinds, decoder, router),
    afterReplay: () => {
      windows.tick();
      alerts?.adoptLogged(alertLog.unmatched());
      alerts?.afterReplay(clock.now());
      if (batcher.passedOverRecords > 0) {
        logger.info({ passedOverRecords: batcher.passedOverRecords, storedBelow: stored.below }, 'replayed records whose raw readings the log holds in store batches already were not batched again');
      }
    },
    logger,
  });

  await startSink(sink, logger);
  await outbox.start();
  batcher.start();

  // ingest
  const ingest: MqttIngest = await createMqttIngest({
    config: config.mqtt,
    maxInFlightReadings: config.ingest.maxInFlightReadings,
    rateLimit: { ...config.ingest.rateLimit, maxDevices: config.ingest.maxDevices },
    kinds,
    decoder,
    credentials,
    log,
    clock,
    metrics: ingestMetrics,
    logger: logger.child({ tier: 'ingest' }),
    onDurable: (readings, offset, receivedAt, topic, payload) => pipeline.process(readings, offset, receivedAt, false, topic, payload),
    tls,
    sparkplug,
    onStatus: (status, offset) => pipeline.deviceStatus(status, offset),
    router,
  });
  sparkplugBroker = ingest.broker;
  opened.add('ingest', ingest, () => ingest.close());

  // delivery: log consumers of the alert records (MQTT republish, webhooks), each with its cursor
  const deliveries = alerts === null ? [] : await startAlertDelivery(config, alerts, ingest, log, clock, registry, logger.child({ tier: 'delivery' }));
  for (const c of deliveries) opened.add(`the log consumer ${c.name}`, c, () => c.close());
  await ingest.start();
  // After the listeners open: a subscriber reconnecting quickly after a restart gets the backlog.
  for (const c of deliveries) await c.start();
  // Sparkplug B primary host: STATE online now (retained), offline at shutdown.
  const hostId = config.ingest.sparkplug.enabled ? config.ingest.sparkplug.hostId : null;
  const publishState = (online: boolean): Promise<void> =>
    hostId === null
      ? Promise.resolve()
      : new Promise((resolve) => {
          const { topic, payload } = sparkplugStateMessage(hostId, online, clock.now());
          ingest.broker.publish({ cmd: 'publish', topic, payload, qos: 1, retain: true, dup: false }, () => resolve());
        });
  await publishState(true);

  // periodic work: idle windows, checkpoints, health samples, retention
  const checkpointer = createCheckpointer({ pipeline, batcher, store: checkpoints, log, logger });
  const sampleHealth = createHealthSampler({ totals: ingestMetrics.totals, outbox, sinkName: sink.name, metrics: sinkMetrics, add: (h) => batcher.addHealth(h), clock });
  const timers = new Timers();
  opened.add('the timers', timers, () => timers.stopAll());
  timers.every(idleTickIntervalMs(config.window), () => windows.tick());
  timers.every(config.log.checkpointIntervalMs, () => checkpointer.run());
  timers.every(config.sinks.healthIntervalMs, sampleHealth);
  const silence = alerts === null ? null : createSilenceJob({ schedule: config.alerts.silenceSchedule, clock, check: (now) => alerts.checkSilence(now), logger: logger.child({ tier: 'alerts' }) });
  if (silence !== null) {
    opened.add('the silence check', silence, () => silence.stop());
    await silence.start();
  }
  const retention = startRetentionJob({ log, checkpoints, outboxes: [outbox], consumers: deliveries, config: config.log, logger: logger.child({ tier: 'retention' }) });
  opened.add('log retention', retention, () => retention.stop());
  const storeRetention = startStoreRetentionJob({ sink, schedule: config.log.retentionSchedule, clock, logger: logger.child({ tier: 'retention' }) });
  opened.add('store retention', storeRetention, () => storeRetention?.stop());

  // delivery: the SSE hub follows the log's alert and window records
  const delivery = createDeliveryHub({
    config: config.delivery,
    log: { tail: (from, o) => tailLog(log, from, o), firstOffset: () => log.firstOffset, nextOffset: () => log.nextOffset, recordTypes: { alert: RECORD_TYPES.alert, window: RECORD_TYPES.window } },
    registry,
    logger: logger.child({ tier: 'delivery' }),
    clock,
  });
  const deliveryAuth = createSubscriberAuth(config.delivery.auth, config.http.allowAnonymous);
  if (!config.http.allowAnonymous && config.delivery.auth.jwtSecretFile === null && config.delivery.auth.jwtPublicKeyFile === null) {
    logger.warn('http.allowAnonymous is false and delivery.auth has no key: every stream request is refused (401)');
  }
  const deliveryPlugin = deliveryRoutes({ config: config.delivery, hub: delivery, auth: deliveryAuth, registry, logger: logger.child({ tier: 'delivery' }) });
  opened.add('the SSE hub', delivery, () => delivery.close());
  delivery.start();

  // http
  const sql =
    config.sinks.influxUrl === null
      ? createSqlRunner({ path: config.sinks.embeddedPath, timeoutMs: config.http.sqlTimeoutMs, maxIdle: config.http.maxConcurrentQueries, registry, logger: logger.child({ tier: 'sinks' }) })
      : createInfluxQlRunner({ influxUrl: config.sinks.influxUrl, timeoutMs: config.http.sqlTimeoutMs, registry });
  opened.add('the SQL query processes', sql, () => sql.close());
  const plugins = [deviceRoutes(devices, () => clock.now()), ...(config.http.console ? [consoleRoutes({ sqlLanguage: sql.language })] : [])];
  const http = createHttpServer({
    config: config.http,
    registry,
    kinds,
    sink,
    logger,
    notReadyReason: () => readiness.notReadyReason(),
    tls: config.http.tls ? tls : null,
    sql,
    plugins: [alertRoutes({ alerts: alerts ?? { firing: () => [] } }), deliveryPlugin, ...plugins],
  });
  opened.add('the HTTP server', http, () => http.close());
  const httpPort = await http.start();
  readiness.phase = 'ready';
  logger.info({ mqtt: ingest.ports.mqtt, ws: ingest.ports.ws, mqtts: ingest.ports.tls, wss: ingest.ports.wss, http: httpPort, https: config.http.tls, store: sink.name, dataDir: config.dataDir }, 'pulsegate ready');

  let closing: Promise<void> | null = null;
  return {
    config,
    registry,
    logger,
    events,
    ports: { mqtt: ingest.ports.mqtt, ws: ingest.ports.ws, http: httpPort, mqtts: ingest.ports.tls, wss: ingest.ports.wss },
    reloadTls() {
      if (tls === null) return [];
      const { material, problems, warnings } = readTlsMaterial(config);
      logTlsWarnings(warnings, logger);
      if (material === null || problems.length > 0) {
        logger.error({ problems }, 'TLS files not reloaded; the current certificate stays in use');
        return problems;
      }
      ingest.setTlsMaterial(material);
      if (config.http.tls) http.setTlsMaterial(material);
      logger.info('TLS certificate, key and CA reloaded');
      return [];
    },
    close() {
      closing ??= (async () => {
        readiness.phase = 'stopping';
        timers.stopAll();
        await silence?.stop();
        retention.stop();
        storeRetention?.stop();
        // Alert delivery first, while the broker still takes publishes; what is not handled is handled after the next start.
        await Promise.all(deliveries.map((c) => c.close({ graceMs: DELIVERY_CLOSE_GRACE_MS })));
        await publishState(false);
        await ingest.close();
        await ingest.drain();
        await checkpointer.idle();
        // Checkpoint the state before handing back half-filled windows: after a restart they
        // continue from the checkpoint, and the early emission is overwritten (same identity).
        // When the log cannot take the batches (disk full), no checkpoint is written: the next
        // start replays from the previous one, which loses nothing.
        await checkpointer
          .write(() => {
            closingWindows = true;
            windows.flush();
            return batcher.close();
          })
          .catch((err: unknown) => logger.warn({ err }, 'no checkpoint at shutdown; the next start replays the log from the previous one'));
        // Deliver what is pending while the store answers; whatever is left stays in the log.
        await drainOutbox(outbox, config.sinks.shutdownDrainMs, logger);
        await outbox.close({ graceMs: 2000 });
        await sink.close();
        await delivery.close();
        await log.close();
        await http.close();
        await sql.close();
        await releaseLocks();
        logger.info('pulsegate stopped');
      })();
      return closing;
    },
  };
}

/** The alert engine of alerts.rules (null when alerts.enabled is false). */
function createAlerts(config: GatewayConfig, kinds: KindRegistry, clock: Clock, registry: Registry, record: (t: AlertTransition) => { offset: number; logged: boolean }, logger: Logger): AlertEngine | null {
  if (!config.alerts.enabled) return null;
  const { rules, problems, skipped } = compileAlertRules(config.alerts, kinds, config.window);
  if (skipped.length > 0) logger.warn({ skipped }, 'default alert rules left out: they do not fit the configured windows');
  if (problems.length > 0) throw new GatewayError('GW_ERR_CONFIG_INVALID', `invalid alert rules:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  return new AlertEngine({ rules, maxKeys: config.alerts.maxKeys, clock, registry, record: (t) => record(t), logger: logger.child({ tier: 'alerts' }) });
}

/** How long an alert publish or webhook POST in flight at shutdown may take to finish. */
const DELIVERY_CLOSE_GRACE_MS = 2000;
const MQTT_REPUBLISH_RETRY = { initialMs: 100, maxMs: 5000 } as const;

/**
 * The log consumers that deliver alert records: 'mqtt-alerts' (republish on alerts/..., with the
 * retained messages of what fires now put back first: the broker keeps them in memory only) and
 * one 'webhook-<name>' per delivery.webhooks entry, whose dead letters are written here. Not
 * started yet.
 */
async function startAlertDelivery(config: GatewayConfig, alerts: AlertEngine, ingest: MqttIngest, log: Awaited<ReturnType<typeof createMessageLog>>, clock: Clock, registry: Registry, logger: Logger): Promise<LogConsumer[]> {
  const republish = createMqttRepublish({
    publisher: ingest,
    firingOn: (topic, exceptId) => alerts.firing().find((a) => a.id !== exceptId && alertTopic(a) === topic) ?? null,
    registry,
  });
  await republish.restoreRetained(alerts.firing());
  const consumers: LogConsumer[] = [];
  const common = { log, types: [RECORD_TYPES.alert], stateDir: config.log.dir, clock, logger, registry, refused: 'skip' as const };
  consumers.push(createLogConsumer({ ...common, name: 'mqtt-alerts', handle: (r) => republish.handle(r), retry: MQTT_REPUBLISH_RETRY }));
  for (const w of config.delivery.webhooks) {
    const sender = createWebhookSender({ config: w, clock, registry });
    consumers.push(
      createLogConsumer({
        ...common,
        name: `webhook-${w.name}`,
        handle: (r, context) => sender.handle(r, context),
        retry: { initialMs: w.retryInitialMs, maxMs: w.retryMaxMs },
        onRefused: async (record, err) => {
          await log.appendDurable(RECORD_TYPES.deadLetter, encodeDeadLetter({ at: clock.now(), reason: 'webhook-undeliverable', topic: `webhook/${w.name}`, detail: err.message, payload: record.payload }));
          sender.deadLettered();
        },
      }),
    );
  }
  return consumers;
}

/** A store that cannot be reached at startup is waited for (batches wait in the log); a store config that is wrong ends startup. */
async function startSink(sink: { start(): Promise<void> }, logger: Logger): Promise<void> {
  try {
    await sink.start();
  } catch (err) {
    if (isGatewayError(err, 'GW_ERR_CONFIG_INVALID')) throw err;
    logger.warn({ err }, 'store not reachable at startup; batches wait in the log');
  }
}

/**
 * Process-wide settings of a gateway that owns its process (the CLI; not applied by
 * startGateway, which may share a process with other code).
 */
export function applyRuntimeConfig(config: GatewayConfig): void {
  // Read by V8 at every full GC, so setting it now takes effect.
  if (config.runtime.heapGrowingPercent > 0) setFlagsFromString(`--heap-growing-percent=${config.runtime.heapGrowingPercent}`);
}

/**
 * Runs the gateway until SIGINT/SIGTERM; returns the process exit code. The process exits within
 * `runtime.shutdownTimeoutMs` of the first signal whatever the state of the disk or the store:
 * past it, with exit code 1 (what was not durable is not acknowledged, so nothing acked is lost).
 */
export async function runGateway(config: GatewayConfig): Promise<number> {
  applyRuntimeConfig(config);
  const gw = await startGateway(config);
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        gw.logger.warn(`${signal} again: exiting without a clean shutdown`);
        process.exit(1);
      }
      stopping = true;
      const timeoutMs = config.runtime.shutdownTimeoutMs;
      // Armed until the process ends: also covers a handle left open after a clean close.
      setTimeout(() => {
        gw.logger.error({ shutdownTimeoutMs: timeoutMs }, `shutdown did not finish within runtime.shutdownTimeoutMs (${timeoutMs} ms): exiting with code 1`);
        process.exit(1);
      }, timeoutMs).unref();
      gw.logger.info(`${signal}: shutting down`);
      gw.close().then(
        () => resolve(0),
        (err: unknown) => {
          gw.logger.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
    // Renewed certificates: reloaded in place, for new connections; open ones keep theirs.
    // Without TLS, SIGHUP keeps its default meaning (the process ends).
    if (gw.ports.mqtts !== null || gw.ports.wss !== null || config.http.tls) {
      process.on('SIGHUP', () => {
        gw.reloadTls();
      });
    }
  });
}

/**
 * Composition root: builds each tier from its config slice, wires them in data-flow order,
 * recovers from the log, and shuts down in reverse order. No tier logic lives here.
 */
import { isAbsolute, join, relative } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import { systemClock, type Clock } from './clock.js';
import type { GatewayConfig } from './config/config.js';
import { GatewayError, isGatewayError } from './errors.js';
import { loadCredentials } from './ingest/credentials.js';
import { readingsOfIngestRecord } from './ingest/ingest-record.js';
import { encodeDeadLetter } from './log/dead-letter.js';
import { receivedAtOfIngestRecord } from './log/ingest-record-format.js';
import { createMqttIngest, type MqttIngest } from './ingest/mqtt-ingest.js';
import { createPayloadDecoder } from './ingest/payload-decoder.js';
import { SequenceTracker } from './pipeline/sequence-tracker.js';
import { createHttpServer } from './http/http-server.js';
import { createKindRegistry } from './kinds/registry.js';
import type { Reading } from './kinds/kind-descriptor.js';
import { createCheckpointStore } from './log/checkpoint-store.js';
import { lockDirectory, type DirLock } from './log/data-dir-lock.js';
import { createMessageLog } from './log/message-log.js';
import { createOutbox } from './log/outbox.js';
import { startRetentionJob } from './jobs/retention-job.js';
import { startStoreRetentionJob } from './jobs/store-retention-job.js';
import { RECORD_TYPES } from './log/types.js';
import { createIngestMetrics } from './ingest/ingest-metrics.js';
import { createRegistry } from './metrics.js';
import { ReadingPipeline, type PipelineState } from './pipeline/reading-pipeline.js';
import { SinkBatcher } from './sinks/sink-batcher.js';
import { encodeBatch } from './sinks/batch-codec.js';
import { createThreadedSink } from './sinks/sink-thread.js';
import { createSinkMetrics } from './sinks/sink-metrics.js';
import { createWindowEngine } from './window/window-engine.js';
import { createTlsMetrics, loadTlsMaterial, readTlsMaterial } from './tls.js';
import { registerWindowMetrics } from './window/window-metrics.js';


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
}

export interface GatewayDeps {
  readonly clock?: Clock;
  readonly logger?: Logger;
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * Starts the gateway: first takes the exclusive lock of the data directory (and of log.dir when
 * it lies outside it), so that a second gateway on the same files is refused before it touches
 * them; the locks are released by close(), or at once when startup fails.
 */
export async function startGateway(config: GatewayConfig, deps: GatewayDeps = {}): Promise<GatewayHandle> {
  const logger = deps.logger ?? pino({ level: config.logLevel, base: { service: 'pulsegate' } });
  const locks: DirLock[] = [await lockDirectory(config.dataDir, logger)];
  const releaseLocks = async (): Promise<void> => {
    for (const l of locks.splice(0)) {
      await l.release().catch((err: unknown) => logger.warn({ err, lock: l.path }, 'could not remove the lock file'));
    }
  };
  try {
    if (!isInside(config.log.dir, config.dataDir)) locks.push(await lockDirectory(config.log.dir, logger));
    return await startLocked(config, deps, logger, releaseLocks);
  } catch (err) {
    await releaseLocks();
    throw err;
  }
}

async function startLocked(config: GatewayConfig, deps: GatewayDeps, logger: Logger, releaseLocks: () => Promise<void>): Promise<GatewayHandle> {
  const clock = deps.clock ?? systemClock;
  const kinds = createKindRegistry();
  const registry = createRegistry();
  const ingestMetrics = createIngestMetrics(registry, [...kinds.keys()]);
  const credentials = config.mqtt.credentialsFile === null ? null : loadCredentials(config.mqtt.credentialsFile);
  if (!config.mqtt.allowAnonymous && credentials === null && config.mqtt.clientCertificates === 'off') {
    logger.warn('mqtt.allowAnonymous is false, no mqtt.credentialsFile is set and mqtt.clientCertificates is off: no device can connect');
  }
  const decoder = createPayloadDecoder(kinds, config.ingest);
  const tlsLoaded = loadTlsMaterial(config);
  for (const warning of tlsLoaded.warnings) logger.warn(warning);
  const tls = tlsLoaded.material === null ? null : { material: tlsLoaded.material, metrics: createTlsMetrics(registry) };
  let phase: 'starting' | 'replaying' | 'ready' | 'stopping' = 'starting';

  // log tier
  const log = await createMessageLog({ ...config.log, registry, logger: logger.child({ tier: 'log' }), clock });
  await log.start();
  const checkpoints = createCheckpointStore({ dir: config.log.dir });
  let checkpoint: Awaited<ReturnType<typeof checkpoints.readLatest>>;
  try {
    checkpoint = await checkpoints.readLatest();
    checkCheckpointAgainstLog(checkpoint?.offset ?? null, checkpoints.unreadable, log, config.log.dir, logger);
  } catch (err) {
    await log.close();
    throw err;
  }

  // sink tier, behind the sender-based side of the log
  const sinkMetrics = createSinkMetrics(registry);
  const sink = createThreadedSink({ config: config.sinks, kinds, metrics: sinkMetrics, logger: logger.child({ tier: 'sinks' }) });
  const outbox = createOutbox({
    log,
    destination: sink.name,
    send: (payload: Buffer) => sink.writeEncoded(payload),
    retry: { initialMs: config.sinks.retryInitialMs, maxMs: config.sinks.retryMaxMs },
    stateDir: config.log.dir,
    clock,
    registry,
    logger: logger.child({ tier: 'outbox' }),
  });

  // pipeline: dedup -> windows -> batches
  const tracker = new SequenceTracker(config.ingest.seqWindow, config.ingest.maxDevices);
  const windows = createWindowEngine({
    kinds,
    config: config.window,
    clock,
    maxPastAgeMs: config.ingest.maxPastAgeMs,
  });
  registerWindowMetrics(registry, windows.stats);
  const batcher = new SinkBatcher({
    maxPoints: config.sinks.batchMaxPoints,
    flushIntervalMs: config.sinks.flushIntervalMs,
    enqueue: (batch) => outbox.enqueue(encodeBatch(batch)),
    logger,
  });
  const pipeline = new ReadingPipeline({
    kinds,
    tracker,
    windows,
    batcher,
    metrics: ingestMetrics,
    registry,
    clock,
    writeRawReadings: config.sinks.writeRawReadings,
    onLate(reading: Reading, sizeMs: number, replaying: boolean) {
      // Dead-lettered once, on the live path; a replay sees the same reading late again.
      if (replaying) return;
      log.append(
        RECORD_TYPES.deadLetter,
        encodeDeadLetter({ at: clock.now(), reason: 'late', topic: `sensors/${reading.kind}/${reading.deviceId}`, detail: `window size ${sizeMs} ms`, payload: Buffer.from(JSON.stringify(reading)) }),
      );
    },
  });

  // recovery: latest checkpoint, then replay every ingest record after it
  phase = 'replaying';
  let from = log.firstOffset;
  if (checkpoint !== null) {
    pipeline.restore(checkpoint.data as PipelineState);
    from = Math.max(checkpoint.offset, log.firstOffset);
    pipeline.processedUpTo = checkpoint.offset;
  }
  pipeline.replaying = true;
  let replayed = 0;
  const replayStart = Date.now();
  for await (const records of log.readBatches(from)) {
    for (const record of records) {
      if (record.type !== RECORD_TYPES.ingest) continue;
      pipeline.process(readingsOfIngestRecord(record.payload, kinds, decoder), record.offset, receivedAtOfIngestRecord(record.payload));
      replayed++;
    }
  }
  pipeline.replaying = false;
  windows.tick();
  if (replayed > 0 || checkpoint !== null) {
    logger.info({ checkpointOffset: checkpoint?.offset ?? null, replayedRecords: replayed, ms: Date.now() - replayStart }, 'recovered from the log');
  }

  try {
    await sink.start();
  } catch (err) {
    if (isGatewayError(err, 'GW_ERR_CONFIG_INVALID')) {
      await sink.close();
      await log.close();
      throw err;
    }
    logger.warn({ err }, 'store not reachable at startup; batches wait in the log');
  }
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
    onDurable: (readings, offset, receivedAt) => pipeline.process(readings, offset, receivedAt),
    tls,
  });
  await ingest.start();

  // periodic work: idle windows, checkpoints, health samples, retention
  let checkpointing: Promise<void> | null = null;
  /**
   * Batch contents and state are captured in the same synchronous step, so the checkpoint covers
   * exactly the readings below `offset`; it is written once those batches are durable.
   * `afterCapture` runs between the two (shutdown emits half-filled windows there).
   */
  async function writeCheckpoint(afterCapture?: () => Promise<unknown>): Promise<void> {
    const durable = batcher.flush();
    const state = { offset: pipeline.processedUpTo, data: pipeline.snapshot() };
    await afterCapture?.();
    await durable;
    await checkpoints.write(state);
  }
  const runCheckpoint = (): void => {
    if (checkpointing !== null) return;
    checkpointing = writeCheckpoint()
      .catch((err: unknown) => logger.error({ err }, 'checkpoint failed'))
      .finally(() => {
        checkpointing = null;
      });
  };
  let last = { ...ingestMetrics.totals, at: clock.now() };
  let lastRetries = 0;
  const sampleHealth = (): void => {
    const now = clock.now();
    sinkMetrics.setPendingBatches(outbox.pending);
    if (outbox.retries > lastRetries) sinkMetrics.retries.labels(sink.name).inc(outbox.retries - lastRetries);
    lastRetries = outbox.retries;
    const t = ingestMetrics.totals;
    const secs = Math.max((now - last.at) / 1000, 0.001);
    batcher.addHealth({
      ts: now,
      values: {
        readings_per_s: (t.received - last.received) / secs,
        rejected_per_s: (t.rejected - last.rejected) / secs,
        duplicates_per_s: (t.duplicates - last.duplicates) / secs,
        log_backlog_records: outbox.pending,
        sink_lag_ms: outbox.oldestUnackedAgeMs,
        heap_mb: process.memoryUsage().heapUsed / 1_048_576,
      },
    });
    last = { ...t, at: now };
  };
  const timers = [
    setInterval(() => windows.tick(), Math.min(1000, config.window.idleTimeoutMs)),
    setInterval(runCheckpoint, config.log.checkpointIntervalMs),
    setInterval(sampleHealth, config.sinks.healthIntervalMs),
  ];
  const retention = startRetentionJob({ log, checkpoints, outboxes: [outbox], config: config.log, logger: logger.child({ tier: 'retention' }) });
  const storeRetention = startStoreRetentionJob({ sink, schedule: config.log.retentionSchedule, clock, logger: logger.child({ tier: 'retention' }) });

  // http
  const http = createHttpServer({
    config: config.http,
    registry,
    kinds,
    sink,
    logger,
    notReadyReason: () => {
      if (phase !== 'ready') return phase;
      const failure = log.writeFailure;
      if (failure !== null) return `log write failing, acks withheld, retrying: ${failure.message}`;
      return log.backpressured ? 'log over its disk high-water mark' : null;
    },
    tls: config.http.tls ? tls : null,
  });
  const httpPort = await http.start();
  phase = 'ready';
  logger.info({ mqtt: ingest.ports.mqtt, ws: ingest.ports.ws, mqtts: ingest.ports.tls, wss: ingest.ports.wss, http: httpPort, https: config.http.tls, store: sink.name, dataDir: config.dataDir }, 'pulsegate ready');

  let closing: Promise<void> | null = null;
  return {
    config,
    registry,
    logger,
    ports: { mqtt: ingest.ports.mqtt, ws: ingest.ports.ws, http: httpPort, mqtts: ingest.ports.tls, wss: ingest.ports.wss },
    reloadTls() {
      if (tls === null) return [];
      const { material, problems, warnings } = readTlsMaterial(config);
      for (const warning of warnings) logger.warn(warning);
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
        phase = 'stopping';
        for (const t of timers) clearInterval(t);
        retention.stop();
        storeRetention?.stop();
        await ingest.close();
        await ingest.drain();
        await checkpointing;
        // Checkpoint the state before handing back half-filled windows: after a restart they
        // continue from the checkpoint, and the early emission is overwritten (same identity).
        // When the log cannot take the batches (disk full), no checkpoint is written: the next
        // start replays from the previous one, which loses nothing.
        await writeCheckpoint(() => {
          windows.flush();
          return batcher.close();
        }).catch((err: unknown) => logger.warn({ err }, 'no checkpoint at shutdown; the next start replays the log from the previous one'));
        // Deliver what is pending while the store answers; whatever is left stays in the log.
        const drainUntil = Date.now() + config.sinks.shutdownDrainMs;
        while (outbox.pending > 0 && Date.now() < drainUntil) await new Promise((r) => setTimeout(r, 20));
        if (outbox.pending > 0) logger.warn({ pending: outbox.pending }, 'store batches left in the log; they are resent at the next start');
        await outbox.close({ graceMs: 2000 });
        await sink.close();
        await log.close();
        await http.close();
        await releaseLocks();
        logger.info('pulsegate stopped');
      })();
      return closing;
    },
  };
}

/**
 * A checkpoint stands for the effect of every record below its offset. One above the log's end
 * means the log lost records it once held (segments deleted by hand): replaying "after" it would
 * skip everything the log has, so startup is refused. One below the log's first offset means the
 * records in between are gone; the replay starts at what is there, loudly.
 */
function checkCheckpointAgainstLog(
  offset: number | null,
  unreadable: readonly string[],
  log: { readonly firstOffset: number; readonly nextOffset: number },
  dir: string,
  logger: Logger,
): void {
  if (unreadable.length > 0) {
    logger.warn(
      { unreadable, usedOffset: offset },
      offset === null
        ? `damaged checkpoint file(s) in ${dir} ignored; no readable checkpoint is left, so the whole log is replayed`
        : `damaged checkpoint file(s) in ${dir} ignored; using the older checkpoint at offset ${offset} instead`,
    );
  }
  if (offset === null) return;
  if (offset > log.nextOffset) {
    throw new GatewayError(
      'GW_ERR_CHECKPOINT_AHEAD',
      `the checkpoint in ${dir} covers offsets up to ${offset - 1}, but the log there ends at offset ${log.nextOffset - 1} ` +
        `(segment files were deleted or replaced): starting would skip every reading the log holds. ` +
        `To start from what the log holds, accepting that windows and the dedup state restart, remove ${join(dir, 'checkpoint-*.ckpt')} and ${join(dir, 'outbox-*.ckpt')}; ` +
        `or put the missing segment files back`,
      { details: { dir, checkpointOffset: offset, logNextOffset: log.nextOffset } },
    );
  }
  if (offset < log.firstOffset) {
    logger.warn(
      { checkpointOffset: offset, firstOffset: log.firstOffset },
      `the log in ${dir} starts at offset ${log.firstOffset}, after the checkpoint at ${offset}: records ${offset}..${log.firstOffset - 1} are missing and are not replayed`,
    );
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

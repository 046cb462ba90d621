// First, before aedes loads mqtt-packet (see the module).
import './mqtt-parser-tuning.js';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { Aedes, type AuthenticateError, type Client, type ConnectPacket, type PublishPacket, type Subscription } from 'aedes';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { MqttConfig } from '../config/config.js';
import { GatewayError } from '../errors.js';
import type { KindDescriptor, Reading } from '../kinds/kind-descriptor.js';
import type { KindRegistry } from '../kinds/registry.js';
import { RECORD_TYPES, type DurableCallback, type MessageLog } from '../log/types.js';
import type { IngestMetrics } from './ingest-metrics.js';
import { DEFAULT_SUBSCRIBE, type CredentialStore } from './credentials.js';
import { guardConnection, PacketScanner, type PacketGuardOptions } from './packet-guard.js';
import { takeFastPublishes, type FastPublishTarget } from './publish-fast-path.js';
import { encodeDeadLetter } from '../log/dead-letter.js';
import { encodeIngestRecord, ingestRecordBody } from '../log/ingest-record-format.js';
import { createLoginGuard, type AuthResult, type LoginGuard } from './login-guard.js';
import { createPasswordHasher, type PasswordHasher } from './password-hasher.js';
import { createRateLimiter, type RateLimitOptions } from './rate-limiter.js';
import { certificateClientIdRefusal, clientIdRefusal } from './session-binding.js';
import type { PayloadDecoder } from './payload-decoder.js';
import type { RejectReason } from './reject-reasons.js';
import { ContentDedup } from './content-dedup.js';
import { createTopicRouter, type PayloadMapping, type TopicRouter } from './topic-router.js';
import { installRouteGate } from './route-gate.js';
import type { TlsMaterial, TlsMetrics } from '../tls.js';
import { certificateLogin, createMqttTlsListeners, type MqttTlsListeners, type PeerIdentity } from './tls-listeners.js';
import { closeServer, listen } from './listeners.js';
import { parseStatusTopic } from './device-status.js';
import { illFormedTopic } from './topic.js';
import { encodeDeviceStatus, type DeviceStatus } from '../log/device-status-record.js';
import { InOrderAnswers } from './in-order-answers.js';
import type { SparkplugIngest } from './sparkplug.js';
import { encodeSparkplugRecord, isSparkplugTopic } from './sparkplug-record.js';

/**
 * Rejected publishes are re-topiced here (and lose their retain flag) so they are never forwarded
 * to `#` subscribers [MQTT-4.7.2-1] nor kept as retained messages.
 */
const REJECTED_TOPIC_PREFIX = '$pulsegate/rejected/';
/** The gateway's internal topics: no client may subscribe to them. */
const INTERNAL_TOPIC_PREFIX = '$pulsegate';
/** First levels of the gateway's own topics, never passthrough whatever mqtt.passthrough says. */
const RESERVED_FIRST_LEVELS = new Set(['sensors', 'alerts']);
/** Longest quiet time between two "ingest append failed" lines while the log keeps failing. */
const APPEND_FAILURE_LOG_MS = 10_000;
/** Devices without seq whose recent publishes are remembered for dedup by content (ingest.sources). */
const CONTENT_DEDUP_DEVICES = 100_000;

export interface MqttIngestOptions {
  readonly config: MqttConfig;
  /**
   * Bound on readings taken in but not yet durable and processed. Past it, QoS 0 publishes too
   * wait for durability before aedes reads the next packet of their connection, so a fast
   * publisher meets TCP backpressure instead of filling the heap (policy "block").
   */
  readonly maxInFlightReadings: number;
  /** Per-device publish budget (ingest.rateLimit, bounded by ingest.maxDevices); absent = no limit. */
  readonly rateLimit?: RateLimitOptions;
  readonly kinds: KindRegistry;
  readonly decoder: PayloadDecoder;
  readonly credentials: CredentialStore | null;
  readonly log: MessageLog;
  readonly clock: Clock;
  readonly metrics: IngestMetrics;
  readonly logger: Logger;
  /**
   * Receives the readings of each accepted publish once its ingest record is durable, in log
   * order, with the record's offset and its receivedAt. This is the only way readings leave ingest.
   * `topic` and `payload`: the publish they were decoded from, when they are every reading it
   * decodes to there (a native topic: not a mapped source, not Sparkplug B); else null.
   */
  readonly onDurable: (readings: readonly Reading[], offset: number, receivedAt: number, topic: string | null, payload: Buffer | null) => void;
  /** Server certificate/key (and client CA) for mqtt.tlsPort / mqtt.wssPort; null when both are off. */
  readonly tls?: { readonly material: TlsMaterial; readonly metrics: TlsMetrics } | null;
  /** Sparkplug B ingest of spBv1.0/... topics (ingest.sparkplug); absent or null = off (such topics are bad_topic). */
  readonly sparkplug?: SparkplugIngest | null;
  /** Receives each deviceStatus record (a Sparkplug B birth or death) once durable, in log order. */
  readonly onStatus?: (status: DeviceStatus, offset: number) => void;
  /** Topics -> kind and device (sensors/<kind>/<id>, ingest.sources); default: sensor topics only. */
  readonly router?: TopicRouter;
}

export interface MqttIngest {
  start(): Promise<void>;
  /** Bound ports (useful when configured as 0). */
  readonly ports: { mqtt: number; ws: number | null; tls: number | null; wss: number | null };
  readonly broker: Aedes;
  /** Resolves once every publish taken in has become durable (or failed). */
  drain(): Promise<void>;
  /** Idempotent: stops accepting connections, closes clients and the broker. */
  close(): Promise<void>;
  /** New TLS certificate/key/CA for new connections (e.g. renewed certificates). */
  setTlsMaterial(material: TlsMaterial): void;
  /**
   * Publishes as the gateway itself (alert republish): no authorizePublish, straight to the
   * subscribers whose filters the broker let through. Resolves once the broker has taken it
   * (stored when retained, queued to every matching subscriber); rejects after close().
   * An empty retained payload clears the topic's retained message [MQTT-3.3.1-10].
   */
  publish(topic: string, payload: Buffer, options: { readonly qos: 0 | 1; readonly retain: boolean }): Promise<void>;
  /** Sets a topic's retained message (QoS 1) without sending it to anyone now: later subscribers get it. */
  storeRetained(topic: string, payload: Buffer): Promise<void>;
}

export async function createMqttIngest(options: MqttIngestOptions): Promise<MqttIngest> {
  const { config, kinds, decoder, credentials, log, clock, metrics, logger } = options;
  const identities = new WeakMap<Client, string>();
  /** What the client certificate of a TLS connection says (absent: not TLS, or no certificate asked for). */
  const peers = new WeakMap<Client, PeerIdentity>();
  let inFlight = 0;
  let inFlightReadings = 0;
  let drainWaiters: (() => void)[] = [];
  let closed = false;
  /** CONNECTs with a zero-byte client id and CleanSession=0, answered with CONNACK 2 [MQTT-3.1.3-8]. */
  const emptyIdPersistent = new WeakSet<Client>();
  /** The will messages of connected clients (the objects aedes later passes to authorizePublish). */
  const wills = new WeakSet<object>();
  const passthrough = config.passthrough;
  /** Passthrough topics holding a retained message, at most mqtt.passthroughMaxRetained (then: delivered, not retained). */
  const retainedPassthrough = new Set<string>();

  const settle = (): void => {
    inFlight--;
    if (inFlight === 0 && drainWaiters.length > 0) {
      const waiters = drainWaiters;
      drainWaiters = [];
      for (const w of waiters) w();
    }
  };

  const router = options.router ?? createTopicRouter({ kinds });
  const contentDedup = new ContentDedup(CONTENT_DEDUP_DEVICES, () => metrics.contentDedupEviction());
  const limiter = options.rateLimit === undefined ? null : createRateLimiter(options.rateLimit);
  // Password checks run on their own worker threads, throttled per username and address.
  const hasher: PasswordHasher | null =
    credentials === null ? null : createPasswordHasher({ workers: config.auth.hashWorkers, maxQueued: config.auth.maxPendingLogins, onHashed: () => metrics.authHashed() });
  const loginGuard: LoginGuard | null = credentials === null ? null : createLoginGuard({ ...config.auth, clock });

  // A rate-limited publish past the first of its run: counted and acknowledged, no dead letter,
  // so a flooding device adds no log writes.
  function refuseUnlogged(packet: PublishPacket, done: (error?: Error | null) => void, reason: RejectReason): void {
    metrics.rejected(reason, 1);
    packet.topic = REJECTED_TOPIC_PREFIX + reason;
    packet.retain = false;
    done(null);
  }

  // [MQTT-3.3.5-2]: a server that does not authorize a PUBLISH has no way to tell the client; it
  // either acknowledges it positively or closes the connection. We acknowledge it (once the dead
  // letter is durable) and keep the connection, so one bad message costs one message.
  function rejectPublish(
    packet: PublishPacket,
    topic: string,
    payload: Buffer,
    receivedAt: number,
    done: (error?: Error | null) => void,
    reason: RejectReason,
    detail: string,
  ): void {
    metrics.rejected(reason, 1);
    packet.topic = REJECTED_TOPIC_PREFIX + reason;
    packet.retain = false;
    if (closed) return done(null);
    // Encoded before it counts as in flight: an encoding that throws leaves nothing to settle.
    const record = encodeDeadLetter({ at: receivedAt, reason, topic, detail, payload }, config.deadLetterPayloadBytes);
    inFlight++;
    log.append(RECORD_TYPES.deadLetter, record, (err) => {
      settle();
      if (err) logger.error({ err }, 'dead-letter append failed');
      if (packet.qos > 0) done(err ? new Error('log unavailable') : null);
    });
    if (packet.qos === 0) done(null);
  }

  // A failing log refuses every publish in flight at once: one error line, then a count at most
  // every APPEND_FAILURE_LOG_MS, instead of a stack per publish.
  let appendFailuresSinceLog = 0;
  let appendFailureLoggedAt = Number.NEGATIVE_INFINITY;
  function appendFailureLog(err: Error, topic: string): void {
    const now = clock.now();
    if (now - appendFailureLoggedAt < APPEND_FAILURE_LOG_MS) {
      appendFailuresSinceLog++;
      return;
    }
    logger.error({ err, topic, alsoFailedSinceLastLine: appendFailuresSinceLog }, 'ingest append failed; publish not acknowledged');
    appendFailureLoggedAt = now;
    appendFailuresSinceLog = 0;
  }

  function authorizeDevicePublish(client: Client, packet: PublishPacket, done: (error?: Error | null) => void): void {
    const topic = packet.topic;
    const payload = packet.payload as Buffer;
    const receivedAt = clock.now();
    const illFormed = illFormedTopic(topic);
    if (illFormed !== null) return refuseIllFormed(packet, topic, payload, receivedAt, done, illFormed);
    if (options.sparkplug && isSparkplugTopic(topic)) return acceptSparkplug(client, packet, topic, payload, receivedAt, done);
    const sensor = router.route(topic);
    if (sensor === null) {
      if (isPassthrough(topic)) return routePassthrough(client, packet, payload, receivedAt, done);
      return rejectPublish(packet, topic, payload, receivedAt, done, 'bad_topic', router.expected);
    }
    const identity = identities.get(client);
    if (identity !== undefined && identity !== sensor.deviceId) {
      return rejectPublish(packet, topic, payload, receivedAt, done, 'unauthorized', `device "${identity}" may publish only under sensors/<kind>/${identity} (or topics of ingest.sources whose {deviceId} is ${identity})`);
    }
    // An anonymous client (mqtt.allowAnonymous beside a credentials file) never writes as a device that has credentials.
    if (identity === undefined && credentials !== null && credentials.has(sensor.deviceId)) {
      return rejectPublish(packet, topic, payload, receivedAt, done, 'unauthorized', `"${sensor.deviceId}" is a credentialed device; anonymous clients may not publish under its topics`);
    }
    if (limiter !== null) {
      const verdict = limiter.take(sensor.deviceId, receivedAt);
      if (verdict === 'refused') return refuseUnlogged(packet, done, 'rate_limited');
      if (verdict === 'first_refusal') {
        const { publishesPerSecond, burst } = options.rateLimit!;
        return rejectPublish(packet, topic, payload, receivedAt, done, 'rate_limited', `over ingest.rateLimit (${publishesPerSecond}/s, burst ${burst}); further refusals until the device is back within budget are counted, not dead-lettered`);
      }
    }
    if (payload.length > config.maxPayloadBytes) return rejectPublish(packet, topic, payload, receivedAt, done, 'too_large', `${payload.length} bytes > mqtt.maxPayloadBytes ${config.maxPayloadBytes}`);
    const kind = kinds.get(sensor.kind);
    if (kind === undefined) return rejectPublish(packet, topic, payload, receivedAt, done, 'unknown_kind', `unknown sensor kind "${sensor.kind}"`);
    // [MQTT-3.3.1-10]: an empty retained publish removes the topic's retained message. It carries
    // no reading: nothing is ingested or logged; aedes removes the message and forwards the publish.
    if (packet.retain && payload.length === 0) {
      metrics.retainedCleared();
      return done(null);
    }

    const mapping = sensor.mapping;
    const result = mapping === null ? decoder.decode(kind, sensor.deviceId, payload, receivedAt) : mapping.decode(kind, sensor.deviceId, payload, receivedAt);
    if (result.readings.length === 0) {
      const first = result.rejected[0] ?? { reason: 'invalid' as const, detail: 'no readings' };
      for (let i = 1; i < result.rejected.length; i++) metrics.rejected(result.rejected[i]!.reason, 1);
      return rejectPublish(packet, topic, payload, receivedAt, done, first.reason, first.detail);
    }
    // Readings of a partly valid batch are accepted; the rest is counted. The raw payload is in
    // the ingest record, so the rejected readings stay inspectable with `pulsegate log inspect`.
    for (const r of result.rejected) metrics.rejected(r.reason, 1);
    if (closed) return done(new Error('gateway shutting down'));
    // A device without seq: a repeat of its recent bytes is acknowledged, counted and not logged.
    if (mapping !== null && mapping.contentDedupHorizonMs !== null && contentDedup.isDuplicate(kind.name + '\u0000' + sensor.deviceId, payload, receivedAt, mapping.contentDedupHorizonMs)) {
      metrics.contentDuplicate();
      return done(null);
    }

    const readings = result.readings;
    inFlight++;
    inFlightReadings += readings.length;
    // No closure per publish unless it has to wait for the disk.
    if (log.backpressured) {
      waitForDisk(
        () => appendPublish(packet, topic, payload, receivedAt, kind, mapping, readings, done),
        () => unaccept(readings.length),
      );
    } else appendPublish(packet, topic, payload, receivedAt, kind, mapping, readings, done);
    return undefined;
  }

  /** Undoes the in-flight counts of a publish taken in and then not appended. */
  function unaccept(readings: number): void {
    inFlightReadings -= readings;
    settle();
  }

  /** A publish whose handling threw: dead-lettered as internal_error; if even that throws, its connection is closed. */
  function failedPublish(err: unknown, packet: PublishPacket, done: (error?: Error | null) => void): void {
    logger.error({ err, topic: packet.topic }, 'publish handling failed; rejected as internal_error');
    try {
      rejectPublish(packet, String(packet.topic), Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.alloc(0), clock.now(), done, 'internal_error', 'the gateway failed to handle this publish');
    } catch (rejectErr) {
      logger.error({ err: rejectErr, topic: packet.topic }, 'dead-lettering a failed publish failed; closing the connection');
      done(new Error('internal error'));
    }
  }

  /**
   * A topic that is not well-formed UTF-8, or holds U+0000: the server must close the connection
   * [MQTT-1.5.3-1, -2]. The publish is dead-lettered and counted as bad_topic first, so what the device
   * sent stays inspectable; a QoS 1 publish gets no PUBACK, its connection is closed instead.
   */
  function refuseIllFormed(packet: PublishPacket, topic: string, payload: Buffer, receivedAt: number, done: (error?: Error | null) => void, detail: string): void {
    metrics.connectionRefused('bad_utf8');
    rejectPublish(packet, topic, payload, receivedAt, (err) => done(err ?? new Error(detail)), 'bad_topic', `${detail}; the connection is closed`);
  }

  /**
   * Appends an accepted publish's ingest record; processes and releases it once durable (QoS 0:
   * at once, unless over the in-flight bound). If writing the record throws (a record the log
   * cannot hold), that publish alone is rejected as internal_error: this may run from the disk
   * wait's timer, outside the broker hook's safety net. Only the record and the append are
   * guarded: once the append took the durable callback, that callback settles the publish.
   */
  function appendPublish(
    packet: PublishPacket,
    topic: string,
    payload: Buffer,
    receivedAt: number,
    kind: KindDescriptor,
    mapping: PayloadMapping | null,
    readings: readonly Reading[],
    done: (error?: Error | null) => void,
  ): void {
    // QoS 0 is best effort: released at once (there is nothing to send), still logged; but
    // past the in-flight bound it waits like QoS 1, which stops reading its connection.
    // Written by the log straight into its buffer: append copies it at once.
    const waits = packet.qos > 0 || inFlightReadings > options.maxInFlightReadings;
    // What the readings are every reading of (a mapped source's payload decodes otherwise), for
    // the store batch to keep as bytes. One reading is batched as itself: its callback, the one
    // of the busiest path, does not hold the payload.
    const native = mapping === null && readings.length > 1 ? payload : null;
    try {
      const record = ingestRecordBody(receivedAt, topic, payload);
      if (waits) {
        log.append(RECORD_TYPES.ingest, record, (err, offset) => {
          // Closing the connection withholds the PUBACK; the client resends (QoS 1).
          if (onPublishDurable(err, offset, topic, receivedAt, kind, mapping, readings, native)) done(null);
          else done(new Error('log unavailable'));
        });
      } else {
        log.append(RECORD_TYPES.ingest, record, released(topic, receivedAt, kind, mapping, readings, native));
      }
    } catch (err) {
      // Its dead letter counts as in flight before this publish stops counting, so a shutdown
      // waiting for the in-flight count to drain does not close the log between the two.
      failedPublish(err, packet, done);
      unaccept(readings.length);
      return;
    }
    if (!waits) done(null);
  }

  /**
   * The durable callback of a publish already released: made in a scope of its own, so that it
   * holds the readings (and `native`, the payload of a publish of several) but not aedes' `done`
   * (and through it the packet and aedes' per-packet closures). Under load a publish waits ~100 ms
   * for its fdatasync; everything its callback holds outlives a young-generation collection or two
   * and is copied on each.
   */
  function released(topic: string, receivedAt: number, kind: KindDescriptor, mapping: PayloadMapping | null, readings: readonly Reading[], native: Buffer | null): DurableCallback {
    return (err, offset) => void onPublishDurable(err, offset, topic, receivedAt, kind, mapping, readings, native);
  }

  /** Counts and processes a publish once its ingest record is durable; false if the append failed. */
  function onPublishDurable(
    err: Error | null,
    offset: number,
    topic: string,
    receivedAt: number,
    kind: KindDescriptor,
    mapping: PayloadMapping | null,
    readings: readonly Reading[],
    native: Buffer | null,
  ): boolean {
    const n = readings.length;
    settle();
    inFlightReadings -= n;
    if (err) {
      appendFailureLog(err, topic);
      return false;
    }
    // Received = durable in the log: a publish refused at shutdown, or whose append failed
    // (QoS 0 included, released before this), is not counted.
    metrics.received(kind.name, n);
    if (mapping !== null) metrics.mappedReceived(kind.name, n, mapping.arrivalTime, mapping.contentDedupHorizonMs !== null);
    // Processing first, so that what is released is also counted; a QoS 1 PUBACK goes out
    // when done() runs: only now is the reading durable. The reading is in the log whatever
    // processing does, so a processing failure is logged and counted, and the ack still goes.
    try {
      options.onDurable(readings, offset, receivedAt, native === null ? null : topic, native);
    } catch (processErr) {
      metrics.rejected('internal_error', 1);
      logger.error({ err: processErr, topic, offset }, 'processing a durable publish failed');
    }
    return true;
  }

  /** Whether `topic` (not a sensor topic) is routed as mqtt.passthrough; the gateway's own topics never are. */
  function isPassthrough(topic: string): boolean {
    if (passthrough.length === 0 || topic.startsWith('$')) return false;
    const slash = topic.indexOf('/');
    if (RESERVED_FIRST_LEVELS.has(slash < 0 ? topic : topic.slice(0, slash))) return false;
    return passthrough.some((f) => filterCovers(f, topic));
  }

  // A passthrough publish is routed like on an ordinary broker: no ingest, no log. The ACL still
  // applies: beside a credentials file only a device whose `publish` filters cover the topic may.
  function routePassthrough(client: Client, packet: PublishPacket, payload: Buffer, receivedAt: number, done: (error?: Error | null) => void): void {
    const topic = packet.topic;
    if (credentials !== null) {
      const identity = identities.get(client);
      const filters = identity !== undefined && credentials.has(identity) ? credentials.publishFilters(identity) : [];
      if (!filters.some((f) => filterCovers(f, topic))) {
        const who = identity === undefined ? 'an anonymous client' : `device "${identity}"`;
        return rejectPublish(packet, topic, payload, receivedAt, done, 'unauthorized', `${who} may not publish to passthrough topic ${topic} (not in its credentials' publish filters)`);
      }
    }
    if (packet.retain) {
      if (payload.length === 0) retainedPassthrough.delete(topic);
      else if (!retainedPassthrough.has(topic) && retainedPassthrough.size >= config.passthroughMaxRetained) {
        // Policy "deliver-unretained": live subscribers get it, the broker's memory does not grow.
        packet.retain = false;
        metrics.passthroughRetainedRefused();
      } else retainedPassthrough.add(topic);
    }
    metrics.passthrough();
    done(null);
  }

  // A will is published by the broker when its client's connection ended without a DISCONNECT.
  // On the device's own status topic (sensors/<kind>/<id>/status) it says "device gone": a
  // deviceStatus record is appended, then the will is delivered (not retained: the device could
  // never clear it). Anywhere else it is handled like any publish of that client.
  function authorizeWill(client: Client, packet: PublishPacket, done: (error?: Error | null) => void): void {
    const status = parseStatusTopic(packet.topic);
    if (status === null) {
      metrics.will('publish');
      return authorizeDevicePublish(client, packet, done);
    }
    const topic = packet.topic;
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(String(packet.payload ?? ''));
    const receivedAt = clock.now();
    const identity = identities.get(client);
    const refuse = (reason: RejectReason, detail: string): void => {
      metrics.will('rejected');
      rejectPublish(packet, topic, payload, receivedAt, done, reason, detail);
    };
    if (identity !== undefined && identity !== status.deviceId) return refuse('unauthorized', `device "${identity}" may leave a will only on sensors/<kind>/${identity}/status`);
    if (identity === undefined && credentials !== null && credentials.has(status.deviceId)) {
      return refuse('unauthorized', `"${status.deviceId}" is a credentialed device; anonymous clients may not leave wills on its status topic`);
    }
    if (!kinds.has(status.kind)) return refuse('unknown_kind', `unknown sensor kind "${status.kind}"`);
    if (closed) return done(new Error('gateway shutting down'));
    packet.retain = false;
    inFlight++;
    const gone: DeviceStatus = { kind: status.kind, deviceId: status.deviceId, status: 'offline', reason: 'will', at: receivedAt };
    log.append(RECORD_TYPES.deviceStatus, encodeDeviceStatus(gone), (err, offset) => {
      settle();
      if (err) {
        appendFailureLog(err, topic);
        return done(new Error('log unavailable'));
      }
      metrics.will('device_status');
      try {
        options.onStatus?.(gone, offset);
      } catch (processErr) {
        logger.error({ err: processErr, topic, offset }, 'processing a durable device status failed');
      }
      return done(null);
    });
  }

  // A Sparkplug B message (gateway/ingest/sparkplug.ts): its deviceStatus records (births, deaths)
  // and its readings' ingest record are appended in that order; acked once the last is durable.
  function acceptSparkplug(client: Client, packet: PublishPacket, topic: string, payload: Buffer, receivedAt: number, done: (error?: Error | null) => void): void {
    if (payload.length > config.maxPayloadBytes) return rejectPublish(packet, topic, payload, receivedAt, done, 'too_large', `${payload.length} bytes > mqtt.maxPayloadBytes ${config.maxPayloadBytes}`);
    const identity = identities.get(client);
    const outcome = options.sparkplug!.handle(topic, payload, receivedAt, (edge) => {
      if (identity !== undefined && identity !== edge) return `device "${identity}" may publish only as Sparkplug B edge node ${identity}`;
      if (identity === undefined && credentials !== null && credentials.has(edge)) return `"${edge}" is a credentialed device; anonymous clients may not publish as its edge node`;
      return null;
    });
    if ('reject' in outcome) return rejectPublish(packet, topic, payload, receivedAt, done, outcome.reject, outcome.detail);
    const { statuses, readings, rejected } = outcome;
    if (statuses.length === 0 && readings.length === 0) {
      const first = rejected[0];
      if (first === undefined) return done(null); // nothing mapped in it, or a resend: nothing to log
      for (let i = 1; i < rejected.length; i++) metrics.rejected(rejected[i]!.reason, 1);
      return rejectPublish(packet, topic, payload, receivedAt, done, first.reason, first.detail);
    }
    for (const r of rejected) metrics.rejected(r.reason, 1);
    if (closed) return done(new Error('gateway shutting down'));
    // Encoded before anything is appended or counted: an encoding that throws (caught by the hook)
    // leaves no record half-written, and appending below cannot throw, also later from the disk wait.
    const statusRecords = statuses.map(encodeDeviceStatus);
    const readingsRecord = readings.length > 0 ? encodeIngestRecord(receivedAt, topic, encodeSparkplugRecord(readings)) : null;
    inFlight++;
    const n = readings.length;
    inFlightReadings += n;
    const append = (): void => {
      const waitForDurable = packet.qos > 0 || inFlightReadings > options.maxInFlightReadings;
      let pending = statuses.length + (n > 0 ? 1 : 0);
      let failed: Error | null = null;
      const oneDurable = (err: Error | null): void => {
        failed ??= err;
        if (--pending > 0) return;
        settle();
        inFlightReadings -= n;
        if (failed !== null) {
          appendFailureLog(failed, topic);
          if (waitForDurable) done(new Error('log unavailable'));
          return;
        }
        if (waitForDurable) done(null);
      };
      statuses.forEach((s, i) => {
        log.append(RECORD_TYPES.deviceStatus, statusRecords[i]!, (err, offset) => {
          if (!err) {
            try {
              options.onStatus?.(s, offset);
            } catch (processErr) {
              logger.error({ err: processErr, topic, offset }, 'processing a durable device status failed');
            }
          }
          oneDurable(err);
        });
      });
      if (readingsRecord !== null) {
        log.append(RECORD_TYPES.ingest, readingsRecord, (err, offset) => {
          if (!err) {
            metrics.received(readings[0]!.kind, n);
            try {
              options.onDurable(readings, offset, receivedAt, null, null);
            } catch (processErr) {
              metrics.rejected('internal_error', 1);
              logger.error({ err: processErr, topic, offset }, 'processing a durable publish failed');
            }
          }
          oneDurable(err);
        });
      }
      if (!waitForDurable) done(null);
    };
    if (log.backpressured) waitForDisk(append, () => unaccept(n));
    else append();
  }

  /**
   * A device's publish, from aedes' hook or taken off the connection before aedes (the fast path).
   * Nothing a device sends may throw out of here: aedes runs it inside its packet handling, where an
   * exception ends the process. A publish that trips code not expecting its bytes is rejected
   * alone, counted as internal_error, and the connection stays up.
   */
  // aedes handles the packets of one read at once and, when a publish's authorizePublish answers,
  // writes its QoS 1 PUBACK and forwards it to subscribers: the answers are released in the order
  // the publishes came, so one answered at once (a refusal, an empty retained publish) does not
  // overtake one waiting for its fsync [MQTT-4.6.0-2, MQTT-4.6.0-6]. (The fast path orders its own.)
  const answerQueues = new WeakMap<Client, InOrderAnswers>();
  function answersOf(client: Client): InOrderAnswers {
    let q = answerQueues.get(client);
    if (q === undefined) answerQueues.set(client, (q = new InOrderAnswers()));
    return q;
  }

  function onPublish(client: Client, packet: PublishPacket, done: (error?: Error | null) => void): void {
    let answered = false;
    const answer = (err?: Error | null): void => {
      if (answered) return;
      answered = true;
      done(err);
    };
    try {
      if (wills.has(packet)) authorizeWill(client, packet, answer);
      else {
        metrics.published(packet.qos);
        authorizeDevicePublish(client, packet, answer);
      }
    } catch (err) {
      if (answered) logger.error({ err, clientId: client.id }, 'publish handling failed after its answer');
      else failedPublish(err, packet, answer);
    }
  }

  const broker = await Aedes.createBroker({
    preConnect(client, packet, done) {
      // A CONNECT string (client id, will topic, username) that is not well-formed UTF-8, or holds
      // U+0000, closes the connection before it is answered [MQTT-1.5.3-1, -2].
      const illFormed = illFormedConnect(packet);
      if (illFormed !== null) {
        metrics.connectionRefused('bad_utf8');
        return done(new Error(illFormed), false);
      }
      if (packet.clientId === '' && !packet.clean) emptyIdPersistent.add(client);
      if (packet.will) wills.add(packet.will);
      done(null, true);
    },

    // MQTT 3.1.1 [MQTT-3.1.3-6]: a server may accept zero-length client ids (with CleanSession=1).
    authenticate(client: Client, username: Readonly<string> | undefined, password: Readonly<Buffer> | undefined, done: (error: AuthenticateError | null, success: boolean | null) => void) {
      // aedes calls this before registerClient, where a second connection with a client id
      // already online takes that client's session over: refusing here leaves the session alone.
      const refuse = (result: AuthResult, message: string, returnCode: number): void => {
        metrics.auth(result);
        done(authError(message, returnCode), false);
      };
      // [MQTT-3.1.3-8]: a zero-byte client id needs CleanSession=1 (aedes would make one up).
      if (emptyIdPersistent.has(client)) return refuse('client_id_rejected', 'a zero-byte client id needs CleanSession=1', 2);
      // A verified client certificate authenticates its device (no password); bound like a login,
      // client id included.
      const byCertificate = certificateLogin(peers.get(client), username);
      if (byCertificate !== null) {
        if ('refused' in byCertificate) return refuse('not_authorized', byCertificate.refused, 5);
        const why = certificateClientIdRefusal(config.clientIdPolicy, client.id, byCertificate.deviceId);
        if (why !== null) return refuse('client_id_rejected', why, 2);
        identities.set(client, byCertificate.deviceId);
        metrics.auth('ok');
        return done(null, true);
      }
      if (username === undefined || username === '' || credentials === null) {
        if (!config.allowAnonymous) return refuse('not_authorized', username ? 'no credentials configured' : 'anonymous access is disabled', 4);
        const why = clientIdRefusal(config.clientIdPolicy, credentials, client.id, undefined);
        if (why !== null) return refuse('client_id_rejected', why, 2);
        metrics.auth('ok');
        return done(null, true);
      }
      const secret = password === undefined ? Buffer.alloc(0) : Buffer.from(password);
      loginGuard!.attempt(username, remoteAddressOf(client), () => credentials.verify(username, secret, hasher!)).then(
        (result) => {
          // [MQTT-3.2.2.3] 3 = server unavailable (try later), 4 = bad user name or password.
          if (result === 'throttled') return refuse('throttled', 'too many failed logins for this device or address; try again later', 3);
          if (result === 'busy') return refuse('busy', 'too many logins waiting for a password check; try again later', 3);
          if (result === 'bad_credentials') return refuse('bad_credentials', 'bad username or password', 4);
          // Checked only after the secret matched, so the answer tells nothing about usernames.
          const why = clientIdRefusal(config.clientIdPolicy, credentials, client.id, username);
          if (why !== null) return refuse('client_id_rejected', why, 2);
          identities.set(client, username);
          metrics.auth('ok');
          return done(null, true);
        },
        (err: unknown) => {
          if (!closed) logger.error({ err }, 'credential check failed');
          refuse('error', `credential check failed: ${(err as Error).message}`, 3);
        },
      )
        // Nothing a CONNECT causes may end up as an unhandled rejection.
        .catch((err: unknown) => logger.error({ err, clientId: client.id }, 'answering a CONNECT failed'));
    },

    authorizePublish(client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void) {
      if (client === null) return done(null); // the gateway's own publishes (alerts)
      onPublish(client, packet, wills.has(packet) ? done : answersOf(client).next(done));
      return undefined;
    },

    authorizeSubscribe(client: Client | null, sub: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void) {
      const identity = client === null ? undefined : identities.get(client);
      // A filter that is not well-formed UTF-8, or holds U+0000, closes the connection [MQTT-1.5.3-1, -2].
      const illFormed = illFormedTopic(sub.topic, 'topic filter');
      if (illFormed !== null) {
        metrics.connectionRefused('bad_utf8');
        return done(new Error(illFormed));
      }
      // [MQTT-3.9.3-1] a refused subscription is answered with return code 0x80 (null here), and
      // the connection stays up. Nobody reads the gateway's internal topics.
      if (sub.topic.startsWith(INTERNAL_TOPIC_PREFIX)) return done(null, null);
      // Without credentials (an open gateway) anonymous clients subscribe freely. Beside
      // credentialed devices, an anonymous client gets only the default filters (alerts/#): it
      // must not read those devices' readings (sensors/#).
      if (identity === undefined && credentials === null) return done(null, sub);
      if (identity === undefined) return done(null, DEFAULT_SUBSCRIBE.some((f) => filterCovers(f, sub.topic)) ? sub : null);
      // A device known only by its certificate gets the default filters (alerts/#).
      const filters = credentials?.has(identity) ? credentials.subscribeFilters(identity) : DEFAULT_SUBSCRIBE;
      const allowed = filters.some((f) => filterCovers(f, sub.topic));
      return done(null, allowed ? sub : null);
    },

    authorizeForward(_client: Client, packet) {
      return packet.topic.startsWith(REJECTED_TOPIC_PREFIX) ? null : packet;
    },
  });

  // Backpressure: while the log is over its disk high-water mark, publishes wait before being
  // appended, which withholds their PUBACK and (through aedes' serial handling) slows the socket.
  // On shutdown, a held-back publish is abandoned unacknowledged: the client resends it (QoS 1).
  const diskWaiters: { resume: () => void; abandon: () => void }[] = [];
  let diskTimer: NodeJS.Timeout | null = null;
  function waitForDisk(resume: () => void, abandon: () => void): void {
    diskWaiters.push({ resume, abandon });
    if (diskTimer !== null) return;
    logger.warn('log over its disk high-water mark: withholding acks');
    diskTimer = setInterval(() => {
      if (log.backpressured) return;
      clearInterval(diskTimer!);
      diskTimer = null;
      logger.info('log back under its disk high-water mark');
      for (const w of diskWaiters.splice(0)) {
        // Each resume rejects its own publish on failure; this only keeps one from skipping the rest.
        try {
          w.resume();
        } catch (err) {
          logger.error({ err }, 'resuming a held-back publish failed');
        }
      }
    }, 50);
  }

  // Sensor publishes nobody subscribed to skip aedes' topic matching (route-gate.ts); the
  // broker has no `published` hook, which a skipped publish would not call.
  const gate = installRouteGate(broker);
  storeOnlyWellFormedFilters(broker);

  // The fast path (publish-fast-path.ts) takes a publish only when aedes would do nothing with it
  // but hand it to onPublish: a topic that ingest reads (a sensor, a mapped source, Sparkplug B)
  // and that no subscription or publish listener may want, and none that aedes refuses.
  // aedes closes the connection of a PUBLISH whose topic has more levels (its option, default 100).
  const topicLevels = (topic: string): number => {
    let n = 1;
    for (let i = topic.indexOf('/'); i >= 0; i = topic.indexOf('/', i + 1)) n++;
    return n;
  };
  const maxTopicLevels = (broker as unknown as { maxTopicLevels?: number }).maxTopicLevels ?? 100;
  const fastPublishes: FastPublishTarget = {
    take(client, topic, payload, qos, messageId, done) {
      if (closed || topic.length === 0 || topic.indexOf('#') >= 0 || topic.indexOf('+') >= 0 || topicLevels(topic) > maxTopicLevels) return false;
      if (gate.mayMatch(topic) || broker.listenerCount('publish') > 0) return false;
      // A publish of this connection still waits on the broker path: this one goes there too,
      // behind it, so that its PUBACK cannot overtake [MQTT-4.6.0-2].
      if (answerQueues.get(client as Client)?.busy === true) return false;
      if (!(options.sparkplug && isSparkplugTopic(topic)) && router.route(topic) === null) return false;
      const packet = { cmd: 'publish', topic, payload, qos, messageId, retain: false, dup: false } as PublishPacket;
      metrics.readInPlace();
      onPublish(client as Client, packet, done);
      return true;
    },
  };

  broker.on('client', () => metrics.connectedClients.inc());
  broker.on('clientDisconnect', () => metrics.connectedClients.dec());
  broker.on('clientError', (client: Client, err: Error) => logger.debug({ clientId: client.id, err: err.message }, 'client error'));
  broker.on('connectionError', (client: Client, err: Error) => logger.debug({ clientId: client.id, err: err.message }, 'connection error'));

  // Every connection is scanned for oversize, slow and malformed packets before aedes parses it.
  const packetGuard: PacketGuardOptions = {
    maxConnectBytes: config.maxConnectBytes,
    maxPacketBytes: config.maxPacketBytes,
    packetTimeoutMs: config.packetTimeoutMs,
    onRefused(reason, detail) {
      metrics.connectionRefused(reason);
      logger.debug({ reason, detail }, 'mqtt connection refused');
    },
  };

  // A WebSocket message carries MQTT bytes: the largest packet plus its fixed header (5 bytes).
  const WS_MAX_PAYLOAD = Math.max(config.maxPacketBytes, config.maxConnectBytes) + 5;

  /** The one place a connection stream (of any listener) is handed to the broker, through the guard. */
  function handle(stream: Duplex, peer?: PeerIdentity): void {
    const scanner = new PacketScanner(packetGuard.maxConnectBytes, packetGuard.maxPacketBytes);
    const guarded = guardConnection(stream, packetGuard, scanner);
    if (config.fastPublish) takeFastPublishes(guarded, fastPublishes, () => scanner.midPacket);
    const client = broker.handle(guarded as never);
    // Set before any packet is read (that happens on a later tick), so authenticate sees it.
    if (peer !== undefined) peers.set(client, peer);
  }

  // noDelay: Nagle's algorithm holds small PUBACKs back and cuts QoS 1 throughput several-fold.
  const tcp: NetServer = createNetServer({ noDelay: true }, (socket) => handle(socket));
  let httpForWs: HttpServer | null = null;
  let wss: WebSocketServer | null = null;
  const ports = { mqtt: 0, ws: null as number | null, tls: null as number | null, wss: null as number | null };
  let tlsListeners: MqttTlsListeners | null = null;
  if (config.tlsPort !== null || config.wssPort !== null) {
    if (!options.tls) throw new GatewayError('GW_ERR_CONFIG_INVALID', 'mqtt.tlsPort/mqtt.wssPort need TLS material (tls.certFile, tls.keyFile)');
    tlsListeners = createMqttTlsListeners({
      material: options.tls.material,
      metrics: options.tls.metrics,
      clientCertificates: config.clientCertificates,
      host: config.host,
      tlsPort: config.tlsPort,
      wssPort: config.wssPort,
      logger,
      handle,
      wsMaxPayload: WS_MAX_PAYLOAD,
    });
  }

  return {
    broker,
    ports,
    async start() {
      await listen(tcp, config.port, config.host);
      ports.mqtt = (tcp.address() as AddressInfo).port;
      if (config.wsPort !== null) {
        httpForWs = createHttpServer((_req, res) => {
          res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: connect with a WebSocket client (subprotocol mqtt)\n');
        });
        // A WebSocket message is buffered whole before the guard sees it: bound it by the largest packet
        // (plus its fixed header) instead of ws' default of 100 MiB.
        wss = new WebSocketServer({ server: httpForWs, maxPayload: WS_MAX_PAYLOAD });
        wss.on('connection', (ws) => {
          const stream = createWebSocketStream(ws);
          stream.on('error', () => stream.destroy());
          handle(stream);
        });
        await listen(httpForWs, config.wsPort, config.host);
        ports.ws = (httpForWs.address() as AddressInfo).port;
      }
      if (tlsListeners !== null) {
        await tlsListeners.start();
        ports.tls = tlsListeners.ports.tls;
        ports.wss = tlsListeners.ports.wss;
      }
    },
    setTlsMaterial(material) {
      tlsListeners?.setMaterial(material);
    },
    publish(topic, payload, publishOptions) {
      if (closed) return Promise.reject(new GatewayError('GW_ERR_SHUTTING_DOWN', 'broker closed: nothing more is published', { retryable: true }));
      return new Promise((resolve, reject) => {
        broker.publish({ cmd: 'publish', topic, payload, qos: publishOptions.qos, retain: publishOptions.retain, dup: false } as PublishPacket, (err?: Error) => (err ? reject(err) : resolve()));
      });
    },
    async storeRetained(topic, payload) {
      if (closed) throw new GatewayError('GW_ERR_SHUTTING_DOWN', 'broker closed: nothing more is published', { retryable: true });
      // aedes types do not list its persistence, which stores retained messages (aedes.js storeRetained).
      await (broker as unknown as { persistence: { storeRetained(p: PublishPacket): Promise<void> } }).persistence.storeRetained({ cmd: 'publish', topic, payload, qos: 1, retain: true, dup: false } as PublishPacket);
    },
    drain() {
      if (inFlight === 0) return Promise.resolve();
      return new Promise((resolve) => drainWaiters.push(resolve));
    },
    async close() {
      if (closed) return;
      closed = true;
      if (diskTimer !== null) {
        clearInterval(diskTimer);
        diskTimer = null;
      }
      for (const w of diskWaiters.splice(0)) w.abandon();
      const tcpClosed = closeServer(tcp);
      const wsClosed = closeServer(httpForWs);
      wss?.clients.forEach((c) => c.terminate());
      wss?.close();
      const tlsClosed = tlsListeners?.close();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await Promise.all([tcpClosed, wsClosed, tlsClosed, hasher?.close()]);
    },
  };
}

function authError(message: string, returnCode: number): AuthenticateError {
  const err = new Error(message) as AuthenticateError;
  // [MQTT-3.2.2.3] CONNACK 4 = bad user name or password, 3 = server unavailable, 5 = not authorized.
  err.returnCode = returnCode;
  return err;
}

/** The client's remote address, for per-address login throttling; undefined when the transport hides it. */
function remoteAddressOf(client: Client): string | undefined {
  const c = client as unknown as { conn?: { remoteAddress?: unknown; socket?: { remoteAddress?: unknown } }; req?: { socket?: { remoteAddress?: unknown } } };
  const address = c.conn?.remoteAddress ?? c.conn?.socket?.remoteAddress ?? c.req?.socket?.remoteAddress;
  return typeof address === 'string' ? address : undefined;
}

/** Whether subscription filter `filter` covers everything `topic` (itself a filter) matches [MQTT-4.7.1]. */
export function filterCovers(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const fs = f[i]!;
    if (fs === '#') return true;
    const ts = t[i];
    if (ts === undefined) return false;
    if (fs === '+') {
      if (ts === '#') return false;
      continue;
    }
    if (fs !== ts) return false;
  }
  return f.length === t.length;
}

/**
 * aedes stores a persistent session's SUBSCRIBE as the packet's whole filter list once any one of
 * its filters is authorized, so a filter refused as ill-formed UTF-8 beside a good one would be
 * stored, and restoring the session would meet it again and refuse every later CONNECT of that
 * client id. An ill-formed filter is never stored (filters refused by authorization are, and are
 * refused again when the session is restored, which keeps it up).
 */
function storeOnlyWellFormedFilters(broker: Aedes): void {
  const p = (broker as unknown as { persistence: { addSubscriptions(client: Client, subs: Subscription[]): Promise<void> } }).persistence;
  const add = p.addSubscriptions.bind(p);
  p.addSubscriptions = (client, subs) => add(client, subs.some((s) => illFormedTopic(s.topic) !== null) ? subs.filter((s) => illFormedTopic(s.topic) === null) : subs);
}

/** Why a CONNECT's UTF-8 strings may not be used, or null (see illFormedTopic). */
function illFormedConnect(packet: ConnectPacket): string | null {
  return (
    illFormedTopic(packet.clientId, 'client id') ??
    (packet.will === undefined ? null : illFormedTopic(packet.will.topic, 'will topic')) ??
    (packet.username === undefined ? null : illFormedTopic(packet.username, 'username'))
  );
}

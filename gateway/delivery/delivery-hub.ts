import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { backoffMs, isLoggedAttempt, sleepUnlessAborted } from '../backoff.js';
import { systemClock, type Clock } from '../clock.js';
import type { DeliveryConfig } from '../config/config.js';
import { collectedCounter } from '../metrics.js';
import type { LogRecord, RecordType, TailItem } from '../log/types.js';
import { decodeAlertTransition, toAlertEvent, type AlertEvent } from '../wire/alert.js';
import { decodeWindowTransition, type WindowEvent } from '../wire/window.js';
import { alertFields, windowFields, type EventFields } from './event-fields.js';
import { EVENT_NAMES, sseComment, sseEvent, sseRetry, type EventName } from './sse-frame.js';
import type { CompiledFilter, StreamSource } from './stream-filter.js';

/** Follows the log from an offset (gateway/log/tail-reader.ts tailLog, injected by main.ts). */
export type TailFn = (from: number, options: { readonly signal?: AbortSignal; readonly types?: readonly RecordType[] }) => AsyncIterable<TailItem>;

export interface DeliveryLogView {
  readonly tail: TailFn;
  /** First offset still on disk. */
  firstOffset(): number;
  /** Offset the next append gets. */
  nextOffset(): number;
  /** The record types of alert transitions and window results (RECORD_TYPES.alert / .window). */
  readonly recordTypes: { readonly alert: RecordType; readonly window: RecordType };
}

export interface DeliveryHubOptions {
  readonly config: DeliveryConfig;
  readonly log: DeliveryLogView;
  readonly registry: Registry;
  readonly logger: Logger;
  readonly clock?: Clock;
}

export interface SubscribeOptions {
  /** Served stream name (alerts, windows, or a static stream): metric label. */
  readonly stream: string;
  readonly source: StreamSource;
  readonly filter: CompiledFilter;
  /** The client has seen every event up to this offset (Last-Event-ID); null = start live. */
  readonly lastEventId: number | null;
  /** Token expiry, ms: the stream is closed then (the client reconnects with a fresh token). */
  readonly expiresAt: number | null;
}

export interface PollOptions {
  readonly filter: CompiledFilter;
  readonly after: number | null;
  readonly waitMs: number;
  readonly limit: number;
  readonly signal: AbortSignal;
}

export interface PollResult {
  readonly events: AlertEvent[];
  /** Pass as `after` next time: every record up to it was looked at. */
  readonly after: number;
  readonly earliest: { readonly requested: number; readonly firstOffset: number } | null;
}

export interface DeliveryHub {
  start(): void;
  /** Ends every stream and the log follower. Idempotent. */
  close(): Promise<void>;
  /** True while fewer than delivery.maxClients streams and polls are open. */
  hasRoom(): boolean;
  /** True once close() was called (the gateway is shutting down). */
  readonly closed: boolean;
  /** Takes over a hijacked response: writes the headers and serves the stream until either side ends it. */
  subscribe(res: ServerResponse, options: SubscribeOptions): void;
  poll(options: PollOptions): Promise<PollResult>;
  /** The log's next offset: no id this gateway sent is at or above it. */
  logEnd(): number;
  /** Offset after the last alert/window record handed to live clients. */
  readonly position: number;
  readonly clients: number;
}

type AnyEvent = AlertEvent | WindowEvent;

interface Decoded {
  readonly event: AnyEvent;
  readonly fields: EventFields;
  readonly frame: Buffer;
}

interface Group {
  readonly filter: CompiledFilter;
  readonly clients: Set<Client>;
}

interface Marker {
  readonly bytes: number;
  readonly offset: number;
  readonly timestamp: number;
}

interface Client {
  readonly id: number;
  readonly stream: string;
  readonly source: StreamSource;
  readonly filter: CompiledFilter;
  readonly res: ServerResponse;
  readonly abort: AbortController;
  /** Events below this offset were seen by the client already (Last-Event-ID + 1). */
  readonly minOffset: number;
  group: Group | null;
  closed: boolean;
  /** Payload bytes written (the socket's unsent bytes are measured against it). */
  written: number;
  /** Offset and append time of the last event written, -1 / NaN before any. */
  lastOffset: number;
  lastTimestamp: number;
  /** Events written while bytes were unsent: where the client really is (bounded, see MAX_MARKERS). */
  markers: Marker[];
  lastEmptyAt: number;
  lastLagAt: number;
  /** Written to in this turn (see cork()). */
  corked: boolean;
  /** The last write found the socket over its high-water mark: a 'drain' will come. */
  needsDrain: boolean;
  /** While replaying: the last offset read and its append time. */
  readTo: number;
  readTimestamp: number;
  expiry: NodeJS.Timeout | null;
}

/** Per-client position markers kept while its socket holds unsent bytes; beyond, every second one is dropped (coarser, still bounded). */
const MAX_MARKERS = 128;
/** How long a closed stream's final bytes may take to leave before the socket is destroyed. */
const CLOSE_GRACE_MS = 2000;

/**
 * The SSE hub: one follower of the log hands every new alert and window record to the live
 * clients (decoded and framed once, each filter evaluated once per group of clients sharing it);
 * a client that resumes replays from the log up to the follower's position (the snapshot),
 * then joins the live set in the same turn of the event loop — no overlap, no gap. A client's
 * unsent bytes are bounded (delivery.clientBufferBytes): beyond, it is closed with `event:
 * overflow` and resumes losslessly from the log with its Last-Event-ID.
 */
export function createDeliveryHub(options: DeliveryHubOptions): DeliveryHub {
  const { config, log, logger } = options;
  const clock = options.clock ?? systemClock;
  const types = [log.recordTypes.alert, log.recordTypes.window] as const;
  const sourceOfType = new Map<number, StreamSource>([
    [log.recordTypes.alert, 'alerts'],
    [log.recordTypes.window, 'windows'],
  ]);
  const groups: Record<StreamSource, Map<string, Group>> = { alerts: new Map(), windows: new Map() };
  const clients = new Set<Client>();
  let polls = 0;
  let nextClientId = 1;
  let position = log.nextOffset();
  let headTimestamp = Number.NaN;
  const follower = new AbortController();
  let started = false;
  let closed = false;
  let heartbeat: NodeJS.Timeout | null = null;

  const stats = { events: 0, undecodable: 0, gaps: 0, lagNotices: 0, followFailures: 0 };
  const clientsGauge = new Gauge({
    name: 'pulsegate_delivery_clients',
    help: 'Open SSE streams, by stream',
    labelNames: ['stream'],
    registers: [options.registry],
    collect() {
      this.reset();
      const by = new Map<string, number>();
      for (const c of clients) by.set(c.stream, (by.get(c.stream) ?? 0) + 1);
      for (const [stream, n] of by) this.set({ stream }, n);
    },
  });
  void clientsGauge;
  new Gauge({
    name: 'pulsegate_delivery_polls',
    help: 'Long-polls (/v1/alerts/poll) waiting',
    registers: [options.registry],
    collect() {
      this.set(polls);
    },
  });
  new Gauge({
    name: 'pulsegate_delivery_client_lag_ms',
    help: 'Per SSE client: append time of the head minus that of the last event it has received (estimated from its unsent bytes)',
    labelNames: ['client', 'stream'],
    registers: [options.registry],
    collect() {
      this.reset();
      for (const c of clients) this.set({ client: String(c.id), stream: c.stream }, lagOf(c).ms);
    },
  });
  new Gauge({
    name: 'pulsegate_delivery_client_lag_offsets',
    help: 'Per SSE client: log offsets between the head and the last event it has received',
    labelNames: ['client', 'stream'],
    registers: [options.registry],
    collect() {
      this.reset();
      for (const c of clients) this.set({ client: String(c.id), stream: c.stream }, lagOf(c).offsets);
    },
  });
  const closedTotal = new Counter({
    name: 'pulsegate_delivery_clients_closed_total',
    help: 'SSE streams ended by the hub, by reason (overflow: buffer bound reached; stalled: nothing drained for delivery.stallTimeoutMs; expired: token expiry; shutdown)',
    labelNames: ['reason'],
    registers: [options.registry],
  });
  collectedCounter(options.registry, 'pulsegate_delivery_events_total', 'Alert and window records the hub followed from the log', () => stats.events);
  collectedCounter(options.registry, 'pulsegate_delivery_records_undecodable_total', 'Alert or window records the hub could not decode (skipped, counted, never sent)', () => stats.undecodable);
  collectedCounter(options.registry, 'pulsegate_delivery_lag_notices_total', '`event: lag` notices sent (replaying, or live and more than delivery.lagWarnMs behind)', () => stats.lagNotices);
  collectedCounter(options.registry, 'pulsegate_delivery_follow_failures_total', 'Read errors of the hub\'s log follower (each closes the streams; the follow is retried with backoff)', () => stats.followFailures);
  collectedCounter(options.registry, 'pulsegate_delivery_gaps_total', 'Gaps (records deleted by retention or skipped as damaged) reported to clients as `event: gap`', () => stats.gaps);

  function decode(r: LogRecord, source: StreamSource): Decoded | null {
    try {
      if (source === 'alerts') {
        const event = toAlertEvent(decodeAlertTransition(r.payload), r.offset);
        return { event, fields: alertFields(event), frame: Buffer.from(sseEvent(EVENT_NAMES.alert, JSON.stringify(event), r.offset)) };
      }
      const event: WindowEvent = { ...decodeWindowTransition(r.payload), offset: r.offset };
      return { event, fields: windowFields(event), frame: Buffer.from(sseEvent(EVENT_NAMES.window, JSON.stringify(event), r.offset)) };
    } catch (err) {
      // Never the payload in a log line: its offset and what was wrong.
      logger.warn({ offset: r.offset, type: r.type, reason: (err as Error).message }, 'undecodable alert/window record skipped');
      return null;
    }
  }

  // ---- writing to one client ----

  function writeRaw(c: Client, chunk: string | Buffer): void {
    if (c.closed) return;
    c.needsDrain = !c.res.write(chunk);
    c.written += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
  }

  /**
   * Live clients written to in this turn are corked until the turn ends: a batch of records
   * read from the log together leaves in one writev per client instead of one write per event
   * (syscalls are the cost of fan-out).
   */
  const corked: Client[] = [];
  let uncorkScheduled = false;
  function uncorkAll(): void {
    uncorkScheduled = false;
    for (const c of corked.splice(0)) {
      c.corked = false;
      if (!c.res.destroyed) c.res.uncork();
    }
  }
  function cork(c: Client): void {
    c.res.cork();
    corked.push(c);
    if (!uncorkScheduled) {
      uncorkScheduled = true;
      process.nextTick(uncorkAll);
    }
  }

  function writeEvent(c: Client, d: Decoded, r: LogRecord): void {
    if (c.closed) return;
    const unsentBefore = c.res.writableLength;
    writeRaw(c, d.frame);
    c.lastOffset = r.offset;
    c.lastTimestamp = r.timestamp;
    if (unsentBefore > 0) {
      if (c.markers.length >= MAX_MARKERS) c.markers = c.markers.filter((_, i) => i % 2 === 0);
      c.markers.push({ bytes: c.written, offset: r.offset, timestamp: r.timestamp });
    } else c.markers.length = 0;
  }

  function writeControl(c: Client, name: EventName, data: unknown): void {
    writeRaw(c, sseEvent(name, JSON.stringify(data)));
  }

  /** Where the client really is: live, the last event whose bytes have left (from the markers); replaying, the last record read. */
  function lagOf(c: Client): { offsets: number; ms: number } {
    if (c.closed) return { offsets: 0, ms: 0 };
    let offset: number;
    let ts: number;
    if (c.group === null) {
      offset = c.readTo;
      ts = c.readTimestamp;
    } else {
      const unsent = c.res.writableLength;
      if (unsent === 0) return { offsets: 0, ms: 0 };
      const sent = c.written - unsent;
      const m = c.markers.find((x) => x.bytes > sent);
      if (m === undefined) return { offsets: 0, ms: 0 };
      offset = m.offset - 1;
      ts = m.timestamp;
    }
    const offsets = Math.max(0, position - 1 - offset);
    const ms = offsets === 0 || Number.isNaN(headTimestamp) || Number.isNaN(ts) ? 0 : Math.max(0, headTimestamp - ts);
    return { offsets, ms };
  }

  function sendLag(c: Client, replaying: boolean): void {
    const lag = lagOf(c);
    c.lastLagAt = clock.now();
    stats.lagNotices += 1;
    writeControl(c, EVENT_NAMES.lag, { behindOffsets: lag.offsets, behindMs: lag.ms, position: c.lastOffset, head: position - 1, replaying });
  }

  function overflow(c: Client, reason: 'overflow' | 'stalled'): void {
    if (c.closed) return;
    const unsent = c.res.writableLength;
    logger.info({ client: c.id, stream: c.stream, unsentBytes: unsent, lastEventId: c.lastOffset, reason }, 'SSE client closed: it did not keep up; it resumes from the log');
    writeRaw(c, sseComment(`${reason}: reconnect with Last-Event-ID`));
    writeControl(c, EVENT_NAMES.overflow, { reason, unsentBytes: unsent, bufferBytes: config.clientBufferBytes, lastEventId: c.lastOffset < 0 ? null : String(c.lastOffset) });
    end(c, reason);
  }

  function end(c: Client, reason: string): void {
    if (c.closed) return;
    c.closed = true;
    closedTotal.inc({ reason });
    detach(c);
    c.res.end();
    // A client that does not read would keep the socket (and its unsent bytes) forever.
    const t = setTimeout(() => c.res.destroy(), CLOSE_GRACE_MS);
    t.unref();
    c.res.once('close', () => clearTimeout(t));
  }

  function detach(c: Client): void {
    c.closed = true;
    c.abort.abort();
    if (c.expiry !== null) clearTimeout(c.expiry);
    clients.delete(c);
    if (c.group !== null) {
      c.group.clients.delete(c);
      if (c.group.clients.size === 0) groups[c.source].delete(c.group.filter.key);
      c.group = null;
    }
  }

  function joinLive(c: Client): void {
    const map = groups[c.source];
    let g = map.get(c.filter.key);
    if (g === undefined) {
      g = { filter: c.filter, clients: new Set() };
      map.set(c.filter.key, g);
    }
    g.clients.add(c);
    c.group = g;
  }

  // ---- live ----

  function dispatch(r: LogRecord): void {
    position = r.offset + 1;
    headTimestamp = r.timestamp;
    stats.events += 1;
    const source = sourceOfType.get(r.type);
    if (source === undefined) return;
    const map = groups[source];
    if (map.size === 0) return;
    const d = decode(r, source);
    if (d === null) {
      stats.undecodable += 1;
      return;
    }
    const bound = config.clientBufferBytes;
    for (const g of map.values()) {
      if (!g.filter.matches(d.fields)) continue;
      for (const c of g.clients) {
        if (r.offset < c.minOffset) continue;
        if (!c.corked) {
          c.corked = true;
          cork(c);
        }
        writeEvent(c, d, r);
        if (c.res.writableLength > bound) overflow(c, 'overflow');
      }
    }
  }

  /**
   * The log's follower. A read error (a damaged record) ends every stream (their clients resume
   * with their Last-Event-ID) and the follow starts again from the same position, with backoff.
   */
  async function follow(): Promise<void> {
    let failures = 0;
    while (!closed) {
      try {
        for await (const item of log.tail(position, { signal: follower.signal, types })) {
          failures = 0;
          if (item.kind === 'record') dispatch(item.record);
          else if (item.kind === 'gap') {
            // Deleted under the follower: its clients never saw them and never will; they are told.
            stats.gaps += 1;
            position = Math.max(position, item.to);
            for (const c of clients) if (c.group !== null) writeControl(c, EVENT_NAMES.gap, { from: item.from, to: item.to, reason: item.reason });
          }
        }
        return;
      } catch (err) {
        if (closed) return;
        failures += 1;
        stats.followFailures += 1;
        if (isLoggedAttempt(failures)) logger.error({ err, position, failures }, 'the SSE hub could not read the log; streams are closed (clients resume) and the follow is retried');
        for (const c of [...clients]) end(c, 'shutdown');
        await sleepUnlessAborted(backoffMs({ initialMs: 100, maxMs: 30_000 }, failures, Math.random), follower.signal);
      }
    }
  }

  // ---- replay ----

  async function catchUp(c: Client, from: number): Promise<void> {
    let next = from;
    let replayed = false;
    try {
      while (!c.closed && !closed) {
        const target = position;
        if (next >= target) {
          // Same turn as the check: the follower cannot hand out a record in between.
          joinLive(c);
          if (replayed) writeControl(c, EVENT_NAMES.live, { position: c.lastOffset < 0 ? null : c.lastOffset, head: position - 1 });
          return;
        }
        replayed = true;
        let first = true;
        let progressed = false;
        // Every record type: offsets are contiguous, so the read reaches target - 1 (or a gap past it) and stops.
        for await (const item of log.tail(next, { signal: c.abort.signal })) {
          if (c.closed) return;
          if (item.kind === 'earliest') {
            writeControl(c, EVENT_NAMES.earliest, { lastEventId: String(item.requested - 1), firstOffset: item.firstOffset });
            continue;
          }
          if (item.kind === 'gap') {
            stats.gaps += 1;
            writeControl(c, EVENT_NAMES.gap, { from: item.from, to: Math.min(item.to, target), reason: item.reason });
            next = item.to;
            progressed = true;
            if (next >= target) break;
            continue;
          }
          const r = item.record;
          next = r.offset + 1;
          c.readTo = r.offset;
          c.readTimestamp = r.timestamp;
          progressed = true;
          if (sourceOfType.get(r.type) === c.source && r.offset >= c.minOffset) {
            const d = decode(r, c.source);
            if (d !== null && c.filter.matches(d.fields)) writeEvent(c, d, r);
            if (first || clock.now() - c.lastLagAt >= config.heartbeatMs) {
              first = false;
              sendLag(c, true);
            }
          }
          if (c.needsDrain && c.res.writableLength > 0) await once(c.res, 'drain', { signal: c.abort.signal });
          if (next >= target) break;
        }
        if (!progressed && next < target) {
          // The follow ended without reaching the snapshot: the log closed.
          end(c, 'shutdown');
          return;
        }
      }
    } catch (err) {
      if (c.abort.signal.aborted) return;
      logger.warn({ client: c.id, err }, 'SSE replay failed; the stream is closed and the client resumes');
      end(c, 'shutdown');
    }
  }

  // ---- heartbeats, lag, stalls ----

  function beat(): void {
    const now = clock.now();
    const hb = sseComment();
    for (const c of [...clients]) {
      if (c.closed) continue;
      if (c.res.writableLength === 0) c.lastEmptyAt = now;
      else if (now - c.lastEmptyAt >= config.stallTimeoutMs) {
        overflow(c, 'stalled');
        continue;
      }
      writeRaw(c, hb);
      if (c.group !== null) {
        const lag = lagOf(c);
        if (lag.ms > config.lagWarnMs) sendLag(c, false);
      }
      if (c.res.writableLength > config.clientBufferBytes) overflow(c, 'overflow');
    }
  }

  return {
    get position() {
      return position;
    },
    get clients() {
      return clients.size;
    },
    start() {
      if (started) return;
      started = true;
      position = log.nextOffset();
      void follow();
      heartbeat = setInterval(beat, config.heartbeatMs);
      heartbeat.unref();
    },
    async close() {
      if (closed) return;
      closed = true;
      if (heartbeat !== null) clearInterval(heartbeat);
      follower.abort();
      for (const c of [...clients]) {
        writeRaw(c, sseComment('shutdown'));
        end(c, 'shutdown');
      }
    },
    logEnd() {
      return log.nextOffset();
    },
    hasRoom() {
      return !closed && clients.size + polls < config.maxClients;
    },
    get closed() {
      return closed;
    },
    subscribe(res, o) {
      const now = clock.now();
      const c: Client = {
        id: nextClientId++,
        stream: o.stream,
        source: o.source,
        filter: o.filter,
        res,
        abort: new AbortController(),
        // Without a Last-Event-ID: what is appended from now on (what the follower has not reached yet is skipped, not sent).
        minOffset: o.lastEventId === null ? Math.max(position, log.nextOffset()) : o.lastEventId + 1,
        group: null,
        closed: false,
        written: 0,
        lastOffset: o.lastEventId ?? -1,
        lastTimestamp: Number.NaN,
        markers: [],
        lastEmptyAt: now,
        lastLagAt: 0,
        expiry: null,
        needsDrain: false,
        corked: false,
        readTo: o.lastEventId ?? Math.max(position, log.nextOffset()) - 1,
        readTimestamp: Number.NaN,
      };
      clients.add(c);
      res.on('close', () => detach(c));
      res.on('error', (err) => logger.debug({ client: c.id, err: err.message }, 'SSE socket error'));
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      writeRaw(c, sseRetry(config.retryMs));
      if (o.expiresAt !== null) {
        const ms = o.expiresAt - now;
        if (ms <= 0) {
          end(c, 'expired');
          return;
        }
        c.expiry = setTimeout(() => {
          writeRaw(c, sseComment('token expired'));
          end(c, 'expired');
        }, Math.min(ms, 2 ** 31 - 1));
        c.expiry.unref();
      }
      void catchUp(c, c.minOffset);
    },
    async poll(o) {
      polls += 1;
      const events: AlertEvent[] = [];
      let earliest: PollResult['earliest'] = null;
      let scanned = o.after === null ? position : o.after + 1;
      const stop = new AbortController();
      const onAbort = (): void => stop.abort();
      o.signal.addEventListener('abort', onAbort, { once: true });
      follower.signal.addEventListener('abort', onAbort, { once: true });
      let timedOut = false;
      // Only an idle wait is cut short by waitMs: records already there are read first.
      const timer = setTimeout(() => {
        timedOut = true;
        if (scanned >= position) stop.abort();
      }, o.waitMs);
      try {
        for await (const item of log.tail(scanned, { signal: stop.signal })) {
          if (item.kind === 'earliest') {
            earliest = { requested: item.requested, firstOffset: item.firstOffset };
            continue;
          }
          if (item.kind === 'gap') {
            scanned = item.to;
          } else {
            const r = item.record;
            scanned = r.offset + 1;
            if (r.type === log.recordTypes.alert) {
              const d = decode(r, 'alerts');
              if (d !== null && o.filter.matches(d.fields)) events.push(d.event as AlertEvent);
            }
          }
          if (events.length >= o.limit) break;
          if (scanned >= position && (events.length > 0 || timedOut)) break;
        }
      } finally {
        clearTimeout(timer);
        o.signal.removeEventListener('abort', onAbort);
        follower.signal.removeEventListener('abort', onAbort);
        polls -= 1;
      }
      return { events, after: scanned - 1, earliest };
    },
  };
}

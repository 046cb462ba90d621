import type { Logger } from 'pino';
import { backoffMs, sleepUnlessAborted, type RetryPolicy } from '../backoff.js';
import type { Clock } from '../clock.js';
import { decodeAlertTransition, toAlertEvent, type AlertEvent } from '../wire/alert.js';
import type { HandoffEndReason, HandoffRow, HandoffStore } from './handoff-store.js';
import { pushPayload, type PushSender } from './push-sender.js';
import { openSse, SseHttpError, type SseMessage } from './sse-client.js';
import type { PushProxyMetrics } from './push-proxy-metrics.js';

export interface GroupContext {
  readonly store: HandoffStore;
  readonly send: PushSender;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: PushProxyMetrics;
  readonly retry: RetryPolicy;
  readonly random: () => number;
  readonly gatewayUrl: string;
  readonly gatewayToken: string | null;
  readonly maxQueued: number;
  /** Called when a hand-off ends by itself (gone, rejected, expired, stream refused). */
  readonly onEnded: (handoff: LiveHandoff) => void;
}

interface QueuedEvent {
  readonly eventId: number;
  readonly alert: AlertEvent;
}

/**
 * A hand-off being served: its pushes go out one at a time, in stream order. An idle one (most of
 * them, most of the time) holds no promise, timer or abort controller: a delivery task runs only
 * while its queue has events.
 */
export class LiveHandoff {
  readonly id: string;
  readonly subscription: HandoffRow['subscription'];
  readonly expiresAt: number;
  readonly startEventId: number | null;
  /** Durable: the last event done with (see HandoffStore). */
  position: number | null;
  delivered: number;
  /** In memory: the last event put in `queue` (dedupes a stream read again from an earlier id). */
  lastQueued: number | null;
  readonly queue: QueuedEvent[] = [];
  ended = false;
  /** The delivery task while one runs; settles when its last push is settled. */
  running: Promise<void> | null = null;
  private controller: AbortController | null = null;

  constructor(row: HandoffRow) {
    this.id = row.id;
    this.subscription = row.subscription;
    this.expiresAt = row.expiresAt;
    this.startEventId = row.startEventId;
    this.position = row.position;
    this.delivered = row.delivered;
    this.lastQueued = row.position;
  }

  /** Aborted when the hand-off ends or the proxy stops: cuts retry waits short (made on first use). */
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.ended) this.controller.abort();
    return this.controller.signal;
  }

  stop(): void {
    this.controller?.abort();
  }
}

/**
 * One SSE connection to the gateway for one stream + filter, shared by every hand-off on it: the
 * connection reads from the earliest position among them, and each hand-off takes the events
 * after its own position. It follows the log of the gateway at the pace of its slowest hand-off:
 * while a hand-off's queue is full the connection stops reading (the gateway's bounded buffer
 * then overflows, it closes with `overflow`, and the connection resumes with Last-Event-ID).
 */
export class StreamGroup {
  readonly handoffs = new Map<string, LiveHandoff>();
  /** The last event id received on this stream; the Last-Event-ID of the next connect. */
  private cursor: number | null = null;
  private connection: AbortController | null = null;
  private closed = false;
  private roomWaiter: (() => void) | null = null;
  private running: Promise<void> | null = null;

  constructor(
    readonly key: string,
    readonly stream: string,
    private readonly ctx: GroupContext,
  ) {}

  /** Adds a hand-off (new or restored) and starts its delivery loop; starts or rewinds the connection as needed. */
  add(row: HandoffRow): LiveHandoff {
    const h = new LiveHandoff(row);
    if (h.position === null && this.cursor !== null) {
      // No id handed over: it wants what comes after now.
      h.position = h.lastQueued = this.cursor;
      this.ctx.store.setPosition(h.id, this.cursor);
    }
    const wasEmpty = this.handoffs.size === 0;
    this.handoffs.set(h.id, h);
    if (wasEmpty && this.running === null) {
      this.cursor = h.position;
      this.running = this.run();
    } else if (h.position !== null && (this.cursor === null || h.position < this.cursor)) {
      // The connection is past this one's position: read again from it (the others skip what they have).
      this.cursor = h.position;
      this.connection?.abort();
    }
    return h;
  }

  /** Ends a hand-off: no new pushes; waits up to `graceMs` for the one in flight to settle. */
  async end(h: LiveHandoff, reason: HandoffEndReason, graceMs: number): Promise<void> {
    if (!h.ended) {
      h.ended = true;
      h.stop();
      this.ctx.store.end(h.id, reason, this.ctx.clock.now());
      this.ctx.metrics.ended.inc({ reason });
      this.handoffs.delete(h.id);
      this.room();
      if (this.handoffs.size === 0) this.close();
    }
    let timer: NodeJS.Timeout | undefined;
    if (h.running !== null) await Promise.race([h.running, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }

  /** True once closed (its last hand-off ended, or shutdown): a new hand-off needs a new group. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Stops reading; hand-offs stay as they are in the store (a restart resumes them). */
  close(): void {
    this.closed = true;
    this.connection?.abort();
    this.room();
    for (const h of this.handoffs.values()) h.stop();
  }

  /** Settles when the connection loop and the delivery loops have stopped (after close()). */
  async stopped(): Promise<void> {
    await Promise.all([this.running, ...[...this.handoffs.values()].map((h) => h.running)]);
  }

  private async run(): Promise<void> {
    let attempt = 0;
    this.ctx.metrics.streams.inc();
    try {
      while (!this.closed) {
        const conn = new AbortController();
        this.connection = conn;
        let received = false;
        try {
          this.ctx.metrics.connects.inc();
          for await (const msg of openSse({
            url: `${this.ctx.gatewayUrl}${this.key}`,
            lastEventId: this.cursor === null ? null : String(this.cursor),
            token: this.ctx.gatewayToken,
            signal: conn.signal,
          })) {
            received = true;
            attempt = 0;
            await this.onMessage(msg, conn.signal);
            if (conn.signal.aborted) break;
          }
        } catch (err) {
          if (conn.signal.aborted) continue; // rewound or closed: reconnect at once (or stop)
          if (err instanceof SseHttpError && (err.status === 400 || err.status === 404)) {
            this.ctx.logger.warn({ stream: this.key, status: err.status }, 'the gateway refuses this stream; its hand-offs end');
            for (const h of [...this.handoffs.values()]) void this.endBySelf(h, 'stream_refused');
            return;
          }
          attempt++;
          this.ctx.metrics.streamErrors.inc();
          const wait = err instanceof SseHttpError && (err.status === 401 || err.status === 403) ? this.ctx.retry.maxMs : (err instanceof SseHttpError ? err.retryAfterMs : null) ?? backoffMs(this.ctx.retry, attempt, this.ctx.random);
          if (attempt === 1 || attempt % 10 === 0) this.ctx.logger.warn({ stream: this.key, attempt, waitMs: Math.round(wait), err: (err as Error).message }, 'gateway stream failed; reconnecting');
          await sleepUnlessAborted(wait, conn.signal);
          continue;
        }
        if (this.closed || conn.signal.aborted) continue;
        // The gateway closed the stream (after `overflow`, or a restart): resume after the cursor.
        attempt = received ? 0 : attempt + 1;
        if (!received) await sleepUnlessAborted(backoffMs(this.ctx.retry, attempt, this.ctx.random), conn.signal);
      }
    } finally {
      this.ctx.metrics.streams.dec();
      this.connection = null;
    }
  }

  private async onMessage(msg: SseMessage, signal: AbortSignal): Promise<void> {
    if (msg.event !== 'alert') {
      this.ctx.metrics.controlEvents.inc({ event: ['earliest', 'lag', 'overflow'].includes(msg.event) ? msg.event : 'other' });
      if (msg.event === 'earliest') this.ctx.logger.warn({ stream: this.key, data: msg.data.slice(0, 200) }, 'the gateway no longer holds events after the position asked for; pushing from its earliest');
      return;
    }
    const eventId = msg.id !== null && /^[0-9]{1,15}$/.test(msg.id) ? Number(msg.id) : null;
    let alert: AlertEvent;
    try {
      if (eventId === null) throw new TypeError('no integer id');
      alert = toAlertEvent(decodeAlertTransition(Buffer.from(msg.data, 'utf8')), eventId);
    } catch (err) {
      this.ctx.metrics.badEvents.inc();
      this.ctx.logger.warn({ stream: this.key, id: msg.id, err: (err as Error).message }, 'an alert event of the gateway was not readable; skipped');
      return;
    }
    // Backpressure: wait until every hand-off has room (named policy "pause-stream").
    if (this.full()) {
      this.ctx.metrics.backpressure.inc();
      while (this.full() && !signal.aborted && !this.closed) await new Promise<void>((resolve) => (this.roomWaiter = resolve));
      if (signal.aborted || this.closed) return; // not taken: the reconnect reads it again
    }
    for (const h of this.handoffs.values()) {
      if (h.lastQueued !== null && eventId <= h.lastQueued) continue;
      h.queue.push({ eventId, alert });
      h.lastQueued = eventId;
      this.kick(h);
    }
    if (this.cursor === null || eventId > this.cursor) this.cursor = eventId;
  }

  private full(): boolean {
    for (const h of this.handoffs.values()) if (h.queue.length >= this.ctx.maxQueued) return true;
    return false;
  }

  private room(): void {
    const w = this.roomWaiter;
    this.roomWaiter = null;
    w?.();
  }

  private async endBySelf(h: LiveHandoff, reason: HandoffEndReason): Promise<void> {
    if (h.ended) return;
    try {
      await this.end(h, reason, 0);
    } catch (err) {
      // The store failed: the hand-off stays active on disk and is served again after a restart.
      this.ctx.logger.error({ handoff: h.id, reason, err }, 'could not end a hand-off in the store');
    }
    this.ctx.onEnded(h);
  }

  /** Starts the delivery task of a hand-off with queued events, unless one runs. */
  private kick(h: LiveHandoff): void {
    if (h.running !== null || h.ended || this.closed) return;
    h.running = this.drain(h).finally(() => {
      h.running = null;
      if (h.queue.length > 0) this.kick(h);
    });
  }

  /** Pushes the queue out; restarted with backoff when the store fails under it (never an unhandled rejection). */
  private async drain(h: LiveHandoff): Promise<void> {
    let attempt = 0;
    while (!h.ended && !this.closed && h.queue.length > 0) {
      try {
        await this.deliverQueued(h);
        return;
      } catch (err) {
        attempt++;
        if (attempt === 1 || attempt % 10 === 0) this.ctx.logger.error({ handoff: h.id, attempt, err }, 'push delivery failed in the store; retrying');
        await sleepUnlessAborted(backoffMs(this.ctx.retry, attempt, this.ctx.random), h.signal);
      }
    }
  }

  private async deliverQueued(h: LiveHandoff): Promise<void> {
    while (!h.ended && !this.closed) {
      const item = h.queue[0];
      if (item === undefined) return;
      if (this.ctx.clock.now() >= h.expiresAt) {
        void this.endBySelf(h, 'expired');
        return;
      }
      if (h.position !== null && item.eventId <= h.position) {
        h.queue.shift();
        this.room();
        continue;
      }
      const settled = await this.deliver(h, item);
      if (!settled) return;
      h.queue.shift();
      this.room();
    }
  }

  /** One event to one phone, retried until settled; false when the hand-off ended (or stopped) first. */
  private async deliver(h: LiveHandoff, item: QueuedEvent): Promise<boolean> {
    const { store, clock, metrics } = this.ctx;
    store.logPush(h.id, item.eventId, clock.now());
    let small = false;
    let attempt = 0;
    for (;;) {
      const outcome = await this.ctx.send(h.subscription, pushPayload(this.stream, item.eventId, item.alert, small), item.alert);
      switch (outcome.kind) {
        case 'acked':
          // Settled even when the hand-off was taken back meanwhile: the push service has it.
          store.settlePush(h.id, item.eventId, 'acked', clock.now());
          h.position = item.eventId;
          h.delivered++;
          metrics.pushes.inc({ result: small ? 'acked_small' : 'acked' });
          return true;
        case 'too_large':
          metrics.pushes.inc({ result: 'too_large' });
          if (!small) {
            small = true;
            continue;
          }
          this.ctx.logger.warn({ handoff: h.id, eventId: item.eventId }, 'the push service refuses even the small payload (413); event skipped');
          store.settlePush(h.id, item.eventId, 'dropped', clock.now());
          h.position = item.eventId;
          return true;
        case 'gone':
          metrics.pushes.inc({ result: 'gone' });
          void this.endBySelf(h, 'gone');
          return false;
        case 'rejected':
          metrics.pushes.inc({ result: 'rejected' });
          this.ctx.logger.warn({ handoff: h.id, status: outcome.status, err: outcome.message.slice(0, 200) }, 'the push service rejects the push; the hand-off ends');
          void this.endBySelf(h, 'rejected');
          return false;
        case 'retry': {
          metrics.pushes.inc({ result: 'retried' });
          attempt++;
          if (h.ended || this.closed) return false;
          // RFC 8030 section 8.4 / RFC 6585: Retry-After says when to come back; without it, back off.
          const wait = outcome.retryAfterMs ?? backoffMs(this.ctx.retry, attempt, this.ctx.random);
          if (attempt === 1 || attempt % 10 === 0) this.ctx.logger.warn({ handoff: h.id, status: outcome.status, attempt, waitMs: Math.round(wait), err: outcome.message.slice(0, 200) }, 'push failed; retrying');
          await sleepUnlessAborted(wait, h.signal);
          if (h.ended || this.closed) return false;
          if (clock.now() >= h.expiresAt) {
            void this.endBySelf(h, 'expired');
            return false;
          }
        }
      }
    }
  }
}

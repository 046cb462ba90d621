import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { collectedCounter } from './metrics.js';
import type { Reading } from './kinds/kind-descriptor.js';
import type { WindowResult } from './window/types.js';
import type { AlertTransition } from './wire/alert.js';

/**
 * The gateway's event bus: typed and synchronous. The pipeline emits what happened to each durable
 * ingest record; tiers downstream (the sink batcher; later alerts and delivery) subscribe, instead
 * of callbacks threaded through constructors.
 *
 * Synchronous on purpose: a listener runs inside emit(), in subscription order, so it sees events
 * in log order and a checkpoint taken between two records covers what every listener did with the
 * first. A listener must be quick and must not block; work that waits belongs to a queue of its own.
 *
 * A listener that throws does not stop the others, nor reach the emitter (whose caller is ingest's
 * hot path or the recovery replay): the error is counted (`listenerErrors`,
 * pulsegate_event_listener_errors_total) and logged, at most once per `errorLogIntervalMs` per
 * event name, and the emit goes on with the next listener.
 *
 * Listeners are subscribed while the gateway is wired, not per client: at most `maxListeners` per
 * event (overflow policy: refuse, on() throws), so a subscription leak shows at once.
 */
export interface GatewayEvents {
  /**
   * Readings of one durable ingest record that passed dedup (in the record's order), live or
   * replayed; `offset` is the record's log offset, `receivedAt` its arrival time.
   */
  'reading.durable': {
    readonly readings: readonly Reading[];
    readonly offset: number;
    readonly receivedAt: number;
    readonly replay: boolean;
    /** Sequence numbers this record showed skipped (gaps), and skipped ones it filled, for its device. */
    readonly gaps: number;
    readonly gapFills: number;
    /**
     * The record's topic and MQTT payload when `readings` are every reading that payload decodes
     * to on that topic (a native topic, none dropped as a duplicate): the store batch may keep
     * the bytes instead of the readings. Absent or null otherwise (replay, Sparkplug B, mapped
     * sources). A view of what ingest read: a listener that keeps it keeps a copy.
     */
    readonly topic?: string | null;
    readonly payload?: Uint8Array | null;
  };
  /** A reading later than allowed lateness for a window definition: not applied to it. */
  'reading.late': { readonly reading: Reading; readonly sizeMs: number; readonly offset: number; readonly replay: boolean };
  /**
   * A window emitted (a first emission or a correction). `offset`: the ingest record whose
   * processing emitted it; for emissions by the clock (idle windows, shutdown), the last record
   * processed (-1 before any). `replay`: emitted while recovery replays the log.
   */
  'window.emitted': { readonly window: WindowResult; readonly offset: number; readonly replay: boolean };
  /**
   * A device said it is gone or back (a Sparkplug B NDEATH/DDEATH or birth, an MQTT will), from a
   * durable deviceStatus record at `offset`; `at` is the gateway's time of arrival. The silence rule
   * fires on 'offline' at once instead of waiting for its timeout.
   */
  /**
   * An alert transition, told after its record was appended to the log (`offset`; durable soon
   * after, and only durable records reach MQTT, SSE and webhooks). `logged`: the same transition
   * was already in the log from before a restart (at `offset`), so it was not appended again.
   */
  'alert.transition': { readonly transition: AlertTransition; readonly offset: number; readonly replay: boolean; readonly logged: boolean };
  'device.status': { readonly kind: string; readonly deviceId: string; readonly status: 'offline' | 'online'; readonly reason: string; readonly at: number; readonly offset: number; readonly replay: boolean };
}

export type Listener<T> = (payload: T) => void;

export interface TypedEventEmitterOptions {
  readonly logger?: Logger;
  /** Default 10000. */
  readonly errorLogIntervalMs?: number;
  /** Listeners per event name; default 64. */
  readonly maxListeners?: number;
  /** Registers pulsegate_event_listener_errors_total on it. */
  readonly registry?: Registry;
}

export class TypedEventEmitter<Events extends { [K in keyof Events]: unknown }> {
  /** Listener exceptions caught by emit(), since start. */
  listenerErrors = 0;
  private readonly listeners = new Map<keyof Events, Listener<never>[]>();
  private readonly lastErrorLog = new Map<keyof Events, number>();

  constructor(private readonly options: TypedEventEmitterOptions = {}) {
    if (options.registry !== undefined) {
      collectedCounter(options.registry, 'pulsegate_event_listener_errors_total', 'Exceptions thrown by event bus listeners (caught; the other listeners still ran)', () => this.listenerErrors);
    }
  }

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    const list = this.listeners.get(name) ?? [];
    const max = this.options.maxListeners ?? 64;
    if (list.length >= max) throw new RangeError(`more than ${max} listeners of ${String(name)} (a subscription leak?)`);
    // Copy on write: an emit in progress keeps the list it started with.
    this.listeners.set(name, [...list, listener as Listener<never>]);
    return () => {
      const current = this.listeners.get(name) ?? [];
      this.listeners.set(
        name,
        current.filter((l) => l !== listener),
      );
    };
  }

  /** True when someone listens (an emitter may skip building a payload nobody reads). */
  has<K extends keyof Events>(name: K): boolean {
    return (this.listeners.get(name)?.length ?? 0) > 0;
  }

  emit<K extends keyof Events>(name: K, payload: Events[K]): void {
    const list = this.listeners.get(name) as Listener<Events[K]>[] | undefined;
    if (list === undefined) return;
    for (const listener of list) {
      try {
        listener(payload);
      } catch (err) {
        this.listenerFailed(name, err);
      }
    }
  }

  private listenerFailed(name: keyof Events, err: unknown): void {
    this.listenerErrors++;
    const now = Date.now();
    const last = this.lastErrorLog.get(name);
    if (last !== undefined && now - last < (this.options.errorLogIntervalMs ?? 10_000)) return;
    this.lastErrorLog.set(name, now);
    this.options.logger?.error({ err, event: String(name), listenerErrors: this.listenerErrors }, `a listener of ${String(name)} threw; the other listeners still ran`);
  }
}

export type EventBus = TypedEventEmitter<GatewayEvents>;

export function createEventBus(options: TypedEventEmitterOptions = {}): EventBus {
  return new TypedEventEmitter<GatewayEvents>(options);
}

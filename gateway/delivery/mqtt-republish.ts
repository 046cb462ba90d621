import { Counter, type Registry } from 'prom-client';
import { GatewayError } from '../errors.js';
import type { LogRecord } from '../log/types.js';
import { alertTopic, decodeAlertTransition, toAlertEvent, type AlertEvent } from '../wire/alert.js';

/**
 * MQTT republish of alert transitions on alerts/<rule>/<kind>/<deviceId> (alertTopic), QoS 1,
 * the JSON wire format with its log offset. The handler of a log consumer (wired by main.ts), so
 * a transition is published only after it is in the log, and one the gateway crashed before
 * publishing is published after the restart: at least once, subscribers dedupe by (id, state)
 * (or by offset).
 *
 * Retained while firing: a FIRING is published retained, so a client subscribing later learns
 * what fires now. A RESOLVED is published (not retained) and then the topic's retained message
 * is cleared with an empty retained publish [MQTT-3.3.1-10, -11]. Several keys of one rule may
 * share a topic (the lanes of a bridge): when another episode on the topic still fires, its
 * FIRING becomes the retained message instead of the clear (stored, not sent again).
 */
export interface AlertPublisher {
  publish(topic: string, payload: Buffer, options: { readonly qos: 0 | 1; readonly retain: boolean }): Promise<void>;
  /** The topic's retained message, set without sending it to the subscribers of now. */
  storeRetained(topic: string, payload: Buffer): Promise<void>;
}

export interface MqttRepublishOptions {
  readonly publisher: AlertPublisher;
  /** An episode other than `exceptId` firing now on `topic`, if any (the alert engine's firing set). */
  readonly firingOn?: (topic: string, exceptId: string) => AlertEvent | null;
  readonly registry?: Registry;
}

export interface MqttRepublish {
  /** Handles one alert record of the log (the log consumer's `handle`); rejects to be retried. */
  handle(record: Pick<LogRecord, 'offset' | 'payload'>): Promise<void>;
  /**
   * Puts the retained message of every episode firing now back (the broker keeps retained
   * messages in memory only, so a restart loses them). Called before the listeners open.
   */
  restoreRetained(firing: readonly AlertEvent[]): Promise<void>;
}

const EMPTY = Buffer.alloc(0);

export function createMqttRepublish(options: MqttRepublishOptions): MqttRepublish {
  const { publisher } = options;
  const published =
    options.registry === undefined
      ? null
      : new Counter({ name: 'pulsegate_mqtt_alerts_published_total', help: 'Alert transitions published on alerts/<rule>/<kind>/<device> (at least once: a redelivery after a crash counts again)', labelNames: ['state'], registers: [options.registry] });
  published?.inc({ state: 'FIRING' }, 0);
  published?.inc({ state: 'RESOLVED' }, 0);

  function encode(event: AlertEvent): Buffer {
    return Buffer.from(JSON.stringify(event), 'utf8');
  }

  return {
    async handle(record) {
      let event: AlertEvent;
      try {
        event = toAlertEvent(decodeAlertTransition(record.payload), record.offset);
      } catch (cause) {
        throw new GatewayError('GW_ERR_DECODE', `alert record ${record.offset} is not an alert transition: ${(cause as Error).message}`, { cause, retryable: false });
      }
      const topic = alertTopic(event);
      if (event.state === 'FIRING') {
        await publisher.publish(topic, encode(event), { qos: 1, retain: true });
      } else {
        await publisher.publish(topic, encode(event), { qos: 1, retain: false });
        // The subscribers of now had the other FIRING already: it only becomes the retained message again.
        const other = options.firingOn?.(topic, event.id) ?? null;
        if (other === null) await publisher.publish(topic, EMPTY, { qos: 1, retain: true });
        else await publisher.storeRetained(topic, encode(other));
      }
      published?.inc({ state: event.state });
    },
    async restoreRetained(firing) {
      for (const event of firing) {
        if (event.offset < 0) continue;
        await publisher.storeRetained(alertTopic(event), encode(event));
      }
    },
  };
}

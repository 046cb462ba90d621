/**
 * A Sparkplug B v3.0 edge node (`--profile sparkplug`): one MQTT connection for an edge node and
 * its devices (one athlete's heart-rate strap each, from HeartRateModel).
 *
 * - With a primary host, waits for its retained STATE (online) before the births.
 * - Connects with an NDEATH as its MQTT will (bdSeq = the connection's number, from 0), then
 *   publishes NBIRTH (seq 0, bdSeq, `Node Control/Rebirth`) and a DBIRTH per device declaring
 *   `bpm` (alias 1) and `rrMs` (alias 2).
 * - DDATA carries the metrics by alias only; `seq` runs over every message of the node, 0-255,
 *   wrapping. `loss` drops a message now and then (its seq is used, the message never sent), so
 *   the receiver sees a gap.
 * - Answers an NCMD `Node Control/Rebirth` = true with a new NBIRTH (same bdSeq, seq 0) and DBIRTHs.
 * - deviceDeath() publishes a DDEATH; die() ends the connection without DISCONNECT, so the broker
 *   publishes the will; close() sends NDEATH itself and disconnects.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { encodeSparkplugPayload, decodeSparkplugPayload, REBIRTH_METRIC } from '../gateway/ingest/sparkplug-payload.js';
import { HeartRateModel } from './models/heart-rate-model.js';
import { Random } from './random.js';

export const SPARKPLUG_ALIASES = { bpm: 1, rrMs: 2 } as const;

export interface SparkplugEdgeOptions {
  readonly url: string;
  readonly group: string;
  readonly edge: string;
  readonly devices: readonly string[];
  readonly seed: number;
  /** Event time of the first readings (default now). */
  readonly startTs?: number;
  /** Probability that a data message is lost (seq used, not sent); default 0. */
  readonly loss?: number;
  /** bdSeq of the first connection (default 0). */
  readonly bdSeq?: number;
  /** Primary host id: births wait for a retained spBv1.0/STATE/<id> saying online (v3.0). */
  readonly primaryHost?: string;
}

export interface SparkplugEdgeStats {
  /** DDATA sent per device, and the seqs of data messages dropped as lost. */
  readonly sent: Record<string, number>;
  readonly lost: number[];
  births: number;
  rebirthRequests: number;
}

export class SparkplugEdgeNode {
  private client: MqttClient | null = null;
  private seq = 0;
  private bdSeq: number;
  private readonly models: Map<string, HeartRateModel>;
  private readonly rng: Random;
  readonly stats: SparkplugEdgeStats = { sent: {}, lost: [], births: 0, rebirthRequests: 0 };
  /** Values last sent per device, for the births (a birth carries current values). */
  private readonly last = new Map<string, { bpm: number; rrMs?: number; ts: number }>();

  constructor(private readonly options: SparkplugEdgeOptions) {
    this.bdSeq = options.bdSeq ?? 0;
    this.rng = new Random(options.seed, 77);
    const startTs = options.startTs ?? Date.now();
    this.models = new Map(options.devices.map((d, i) => [d, new HeartRateModel({ seed: options.seed, deviceIndex: i, startTs })]));
    for (const d of options.devices) this.stats.sent[d] = 0;
  }

  private topic(type: string, device?: string): string {
    return `spBv1.0/${this.options.group}/${type}/${this.options.edge}${device === undefined ? '' : `/${device}`}`;
  }

  private nextSeq(): number {
    const s = this.seq;
    this.seq = (this.seq + 1) % 256;
    return s;
  }

  private deathPayload(): Buffer {
    return encodeSparkplugPayload({ timestamp: Date.now(), metrics: [{ name: 'bdSeq', type: 'UInt64', value: this.bdSeq }] });
  }

  /** Connects (will = NDEATH) and publishes the births. */
  async start(): Promise<void> {
    const client = mqtt.connect(this.options.url, {
      protocolVersion: 4,
      clientId: `sp-${this.options.group}-${this.options.edge}`,
      clean: true,
      reconnectPeriod: 0,
      will: { topic: this.topic('NDEATH'), payload: this.deathPayload(), qos: 1, retain: false },
    });
    this.client = client;
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
      client.once('close', () => reject(new Error(`cannot connect to ${this.options.url}`)));
    });
    // After the connect, a dropped connection ends the run (publish() rejects); no unhandled 'error'.
    client.on('error', () => undefined);
    client.on('message', (topic, payload) => this.onCommand(topic, payload));
    await client.subscribeAsync(this.topic('NCMD'), { qos: 1 });
    const host = this.options.primaryHost;
    if (host !== undefined) {
      const stateTopic = `spBv1.0/STATE/${host}`;
      const online = new Promise<void>((resolve) => {
        const onState = (topic: string, payload: Buffer): void => {
          if (topic !== stateTopic) return;
          try {
            if ((JSON.parse(payload.toString('utf8')) as { online?: unknown }).online !== true) return;
          } catch {
            return;
          }
          client.off('message', onState);
          resolve();
        };
        client.on('message', onState);
      });
      await client.subscribeAsync(stateTopic, { qos: 1 });
      await online;
    }
    await this.birth();
  }

  private onCommand(topic: string, payload: Buffer): void {
    if (topic !== this.topic('NCMD')) return;
    let rebirth = false;
    try {
      rebirth = decodeSparkplugPayload(payload).metrics.some((m) => m.name === REBIRTH_METRIC && m.value === true);
    } catch {
      return; // not a Sparkplug payload: ignored, as an edge node would
    }
    if (!rebirth) return;
    this.stats.rebirthRequests++;
    this.birth().catch(() => undefined);
  }

  /** NBIRTH (seq 0) and a DBIRTH per device, with the current values. */
  async birth(): Promise<void> {
    this.seq = 0;
    const now = Date.now();
    await this.publish(this.topic('NBIRTH'), {
      timestamp: now,
      seq: this.nextSeq(),
      metrics: [
        { name: 'bdSeq', type: 'UInt64', value: this.bdSeq },
        { name: REBIRTH_METRIC, type: 'Boolean', value: false },
      ],
    });
    for (const d of this.options.devices) {
      const v = this.last.get(d) ?? this.take(d);
      await this.publish(this.topic('DBIRTH', d), {
        timestamp: v.ts,
        seq: this.nextSeq(),
        metrics: [
          { name: 'bpm', alias: SPARKPLUG_ALIASES.bpm, type: 'Int32', value: v.bpm },
          { name: 'rrMs', alias: SPARKPLUG_ALIASES.rrMs, type: 'Int32', value: v.rrMs ?? null },
        ],
      });
    }
    this.stats.births++;
  }

  private take(device: string): { bpm: number; rrMs?: number; ts: number } {
    const r = this.models.get(device)!.next();
    const v = { bpm: r.bpm, ts: r.ts, ...(r.rrMs === undefined ? {} : { rrMs: r.rrMs }) };
    this.last.set(device, v);
    return v;
  }

  /** One DDATA of `device` with its next reading (or a lost message); resolves when written. */
  async data(device: string): Promise<void> {
    const v = this.take(device);
    const seq = this.nextSeq();
    if ((this.options.loss ?? 0) > 0 && this.rng.chance(this.options.loss!)) {
      this.stats.lost.push(seq);
      return;
    }
    const metrics = [{ alias: SPARKPLUG_ALIASES.bpm, type: 'Int32', value: v.bpm }, ...(v.rrMs === undefined ? [] : [{ alias: SPARKPLUG_ALIASES.rrMs, type: 'Int32', value: v.rrMs }])];
    await this.publish(this.topic('DDATA', device), { timestamp: v.ts, seq, metrics });
    this.stats.sent[device] = (this.stats.sent[device] ?? 0) + 1;
  }

  async deviceDeath(device: string): Promise<void> {
    await this.publish(this.topic('DDEATH', device), { timestamp: Date.now(), seq: this.nextSeq(), metrics: [] });
  }

  /**
   * Ends the connection without DISCONNECT: the broker publishes the will (NDEATH). The socket is
   * half-closed after what is written (a QoS 0 publish is "sent" once in the socket's buffer).
   */
  die(): void {
    const c = this.client;
    this.client = null;
    if (c === null) return;
    c.stream.end();
    c.stream.once('close', () => c.end(true));
  }

  /** Sends NDEATH itself, then disconnects. */
  async close(): Promise<void> {
    const c = this.client;
    if (c === null) return;
    this.client = null;
    await c.publishAsync(this.topic('NDEATH'), this.deathPayload(), { qos: 0 });
    await c.endAsync();
  }

  private async publish(topic: string, p: Parameters<typeof encodeSparkplugPayload>[0]): Promise<void> {
    if (this.client === null) throw new Error('edge node not connected');
    // Sparkplug B: NBIRTH, DBIRTH, NDATA and DDATA are published at QoS 0.
    await this.client.publishAsync(topic, encodeSparkplugPayload(p), { qos: 0 });
  }
}

export interface SparkplugRunOptions extends SparkplugEdgeOptions {
  /** DDATA per device. */
  readonly count: number;
  /** DDATA per second per device; 0 = as fast as the socket takes them. */
  readonly rate: number;
  /** How the run ends: NDEATH sent by the node (default), the will after a dropped connection, or DDEATHs then NDEATH. */
  readonly end?: 'ndeath' | 'will' | 'ddeath';
  readonly signal?: AbortSignal;
}

/** Runs an edge node: births, `count` DDATA per device round-robin, then the chosen end. */
export async function runSparkplugEdge(o: SparkplugRunOptions): Promise<SparkplugEdgeStats> {
  const node = new SparkplugEdgeNode(o);
  await node.start();
  const intervalMs = o.rate > 0 ? 1000 / o.rate : 0;
  const t0 = Date.now();
  for (let i = 0; i < o.count && o.signal?.aborted !== true; i++) {
    for (const d of o.devices) await node.data(d);
    if (intervalMs > 0) {
      const wait = t0 + (i + 1) * intervalMs - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  }
  if (o.end === 'will') node.die();
  else {
    if (o.end === 'ddeath') for (const d of o.devices) await node.deviceDeath(d);
    await node.close();
  }
  return node.stats;
}

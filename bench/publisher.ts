/**
 * Benchmark load generator, run as its own process so that the load and the system under test
 * compete for the cores as two processes, never inside one event loop.
 *
 *   tsx bench/publisher.ts --port P [--host 127.0.0.1] [--connections 4] [--devices 25]
 *       [--qos 0|1] [--batch 1] [--inflight 128] [--duration 3] [--warmup 0.5] [--tail 0.3]
 *       [--count N] [--seed 1] [--prefix id] [--client raw|mqttjs] [--mode load|probe]
 *
 * Load mode: N connections, each publishing heart-rate readings for its own devices
 * (`sensors/heart-rate/<prefix>-c<i>-d<j>`), round-robin, seq +1 per reading per device from 1,
 * ts = the wall clock when the write was built, bpm drawn from a table seeded by --seed. A publish
 * carries one HeartRateReading (--batch 1) or a HeartRateBatch of --batch readings.
 *   QoS 0: packets are written as fast as the socket drains (a full socket buffer waits 'drain').
 *   QoS 1: at most --inflight unacknowledged publishes per connection; PUBACKs are counted and
 *          their latency (write -> PUBACK) recorded.
 * The client `raw` builds PUBLISH packets straight into one buffer per socket write; `mqttjs`
 * uses mqtt.js (protocolVersion 4) with pre-encoded payloads, to compare the two.
 *
 * Probe mode: one connection publishing one bridge VehicleDetection every --probe-period-ms at
 * QoS 1 with ts = now, on `sensors/bridge/<prefix>-probe`. It records (monotonic clock) when it
 * wrote each reading that crosses a --probe-window-ms boundary, i.e. the reading that lets the
 * previous window fire, so the harness can match them with the gateway's window emissions.
 *
 * Output (stdout, one JSON object a line): {"event":"started"} once every connection has its
 * CONNACK, then {"event":"result", ...}. Timing: measurement starts --warmup s after "started"
 * and lasts --duration s; the load goes on until SIGTERM (the harness sends it after its last
 * sample of the system under test) or for at most --tail s more; --count N stops after N
 * readings instead (--duration then bounds the run). Either way the result line follows.
 */
import { connect as netConnect, type Socket } from 'node:net';
import mqtt from 'mqtt';
import { Args, seededRandom } from './lib/args.js';
import { LatencyHistogram, monoMs, type LatencySummary } from './lib/stats.js';
import {
  connectPacket,
  DISCONNECT,
  encodeVehicleDetection,
  FrameParser,
  heartRateBatchLen,
  heartRateLen,
  MAX_HEART_RATE_LEN,
  maxPublishHeaderLen,
  PACKET,
  publishPacket,
  writeHeartRate,
  writeHeartRateBatch,
  writePublishHeader,
} from './lib/wire.js';

const args = new Args(process.argv.slice(2));
const opts = {
  host: args.str('host', '127.0.0.1'),
  port: args.num('port', 1883),
  connections: Math.max(1, args.num('connections', 4)),
  devices: Math.max(1, args.num('devices', 25)),
  qos: (args.num('qos', 0) === 1 ? 1 : 0) as 0 | 1,
  batch: Math.max(1, Math.floor(args.num('batch', 1))),
  inflight: Math.min(60_000, Math.max(1, args.num('inflight', 128))),
  duration: args.num('duration', 3),
  warmup: args.num('warmup', 0.5),
  tail: args.num('tail', 0.3),
  count: args.num('count', 0),
  seed: args.num('seed', 1),
  prefix: args.str('prefix', 'bench'),
  client: args.str('client', 'raw'),
  mode: args.str('mode', 'load'),
  probePeriodMs: args.num('probe-period-ms', 5),
  probeWindowMs: args.num('probe-window-ms', 50),
};

const CHUNK_BYTES = 64 * 1024;
const BPM_TABLE = 4096; // power of two: indexed by seq & (BPM_TABLE - 1)

function emit(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function fail(message: string): never {
  emit({ event: 'error', message });
  process.exit(1);
}

/** Seeded bpm table per connection: the same --seed gives the same payload bytes (but ts). */
function bpmTable(conn: number): Uint8Array {
  const rnd = seededRandom(opts.seed, conn);
  const t = new Uint8Array(BPM_TABLE);
  let bpm = 60 + Math.floor(rnd() * 40);
  for (let i = 0; i < BPM_TABLE; i++) {
    bpm = Math.min(190, Math.max(45, bpm + Math.floor(rnd() * 7) - 3));
    t[i] = bpm;
  }
  return t;
}

// ---- counters and the measurement window ---------------------------------------------------

interface Totals {
  sentPublishes: number;
  sentReadings: number;
  ackedPublishes: number;
  ackedReadings: number;
}
const totals: Totals = { sentPublishes: 0, sentReadings: 0, ackedPublishes: 0, ackedReadings: 0 };
let running = true;
let measuring = false;
const latency = new LatencyHistogram();
let errors = 0;
let lastError: string | null = null;
let marks: { a: Totals & { t: number }; b: (Totals & { t: number }) | null } | null = null;
const snap = (): Totals & { t: number } => ({ ...totals, t: monoMs() });

function noteError(err: Error | string): void {
  errors++;
  lastError = typeof err === 'string' ? err : err.message;
}

// ---- raw MQTT connections ------------------------------------------------------------------

interface Device {
  readonly topic: Buffer;
  seq: number;
}

interface RawConn {
  readonly socket: Socket;
  readonly devices: Device[];
  readonly bpms: Uint8Array;
  next: number;
  inflight: number;
  nextId: number;
  readonly sentAt: Float64Array;
  pumpScheduled: boolean;
  waitingDrain: boolean;
  connected: boolean;
  onConnack: (() => void) | null;
  onPuback: ((packetId: number) => void) | null;
}

function openRaw(clientId: string, devices: Device[], bpms: Uint8Array): Promise<RawConn> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: opts.host, port: opts.port, noDelay: true });
    const conn: RawConn = {
      socket,
      devices,
      bpms,
      next: 0,
      inflight: 0,
      nextId: 0,
      sentAt: new Float64Array(65_536),
      pumpScheduled: false,
      waitingDrain: false,
      connected: false,
      onConnack: null,
      onPuback: null,
    };
    const timer = setTimeout(() => reject(new Error(`no CONNACK from ${opts.host}:${opts.port} within 10 s`)), 10_000);
    const parser = new FrameParser((type, _flags, buf, start) => {
      if (type === PACKET.puback) conn.onPuback?.((buf[start]! << 8) | buf[start + 1]!);
      else if (type === PACKET.connack) {
        clearTimeout(timer);
        if (buf[start + 1] !== 0) return reject(new Error(`CONNACK return code ${buf[start + 1]}`));
        conn.connected = true;
        resolve(conn);
      }
    });
    socket.on('data', (chunk: Buffer) => parser.push(chunk));
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (!conn.connected) reject(err);
      else if (running) noteError(err);
    });
    socket.on('close', () => {
      if (running && conn.connected) noteError('connection closed by the server');
      conn.connected = false;
    });
    socket.on('connect', () => socket.write(connectPacket(clientId)));
  });
}

function schedulePump(conn: RawConn): void {
  if (conn.pumpScheduled || conn.waitingDrain || !running) return;
  conn.pumpScheduled = true;
  setImmediate(() => {
    conn.pumpScheduled = false;
    pumpRaw(conn);
  });
}

/** Builds one buffer of PUBLISH packets and writes it; reschedules itself while the socket drains. */
function pumpRaw(conn: RawConn): void {
  if (!running || !conn.connected || conn.waitingDrain) return;
  const { qos, batch, inflight: window, count } = opts;
  const maxPacket = maxPublishHeaderLen(conn.devices[0]!.topic) + batch * (2 + MAX_HEART_RATE_LEN);
  const size = Math.max(CHUNK_BYTES, maxPacket);
  const buf = Buffer.allocUnsafe(size);
  const ts = Date.now();
  const t = monoMs();
  const bpms = conn.bpms;
  const mask = bpms.length - 1;
  let off = 0;
  while (off + maxPacket <= size) {
    if (qos === 1 && conn.inflight >= window) break;
    if (count > 0 && totals.sentReadings >= count) break;
    const dev = conn.devices[conn.next]!;
    conn.next = conn.next + 1 === conn.devices.length ? 0 : conn.next + 1;
    const seq = dev.seq;
    let packetId = 0;
    if (qos === 1) {
      packetId = conn.nextId = conn.nextId === 65_535 ? 1 : conn.nextId + 1;
      conn.sentAt[packetId] = t;
      conn.inflight++;
    }
    if (batch === 1) {
      const bpm = bpms[seq & mask]!;
      off = writePublishHeader(buf, off, dev.topic, qos, packetId, heartRateLen(seq, ts, bpm));
      off = writeHeartRate(buf, off, seq, ts, bpm);
    } else {
      off = writePublishHeader(buf, off, dev.topic, qos, packetId, heartRateBatchLen(seq, batch, ts, bpms));
      off = writeHeartRateBatch(buf, off, seq, batch, ts, bpms);
    }
    dev.seq = seq + batch;
    totals.sentPublishes++;
    totals.sentReadings += batch;
  }
  if (off === 0) {
    if (count > 0 && totals.sentReadings >= count) maybeFinishCount();
    return;
  }
  const flushed = conn.socket.write(buf.subarray(0, off));
  if (!flushed) {
    conn.waitingDrain = true;
    conn.socket.once('drain', () => {
      conn.waitingDrain = false;
      schedulePump(conn);
    });
    return;
  }
  schedulePump(conn);
}

async function runRawLoad(): Promise<() => number> {
  const conns: RawConn[] = [];
  for (let c = 0; c < opts.connections; c++) {
    const devices: Device[] = [];
    for (let d = 0; d < opts.devices; d++) devices.push({ topic: Buffer.from(`sensors/heart-rate/${opts.prefix}-c${c}-d${d}`), seq: 1 });
    conns.push(await openRaw(`${opts.prefix}-pub-${c}`, devices, bpmTable(c)));
  }
  for (const conn of conns) {
    conn.onPuback = (packetId) => {
      conn.inflight--;
      totals.ackedPublishes++;
      totals.ackedReadings += opts.batch;
      if (measuring) latency.record(monoMs() - conn.sentAt[packetId]!);
      schedulePump(conn);
    };
  }
  startClock(() => {
    for (const conn of conns) schedulePump(conn);
  });
  stopHooks.push(async () => {
    await waitUntil(() => conns.every((c) => c.inflight === 0 || !c.connected), opts.qos === 1 ? 3000 : 0);
    for (const c of conns) {
      if (c.connected) c.socket.end(DISCONNECT);
    }
  });
  return () => conns.reduce((n, c) => n + c.inflight, 0);
}

// ---- mqtt.js connections (for comparison) --------------------------------------------------

async function runMqttJsLoad(): Promise<() => number> {
  interface JsConn {
    client: mqtt.MqttClient;
    devices: { topic: string; seq: number }[];
    bpms: Uint8Array;
    next: number;
    inflight: number;
    scheduled: boolean;
  }
  const conns: JsConn[] = [];
  for (let c = 0; c < opts.connections; c++) {
    const client = mqtt.connect({
      host: opts.host,
      port: opts.port,
      protocol: 'mqtt',
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      clientId: `${opts.prefix}-pub-${c}`,
      keepalive: 60,
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    client.on('error', (err) => noteError(err));
    const devices = Array.from({ length: opts.devices }, (_, d) => ({ topic: `sensors/heart-rate/${opts.prefix}-c${c}-d${d}`, seq: 1 }));
    conns.push({ client, devices, bpms: bpmTable(c), next: 0, inflight: 0, scheduled: false });
  }
  const { qos, batch, inflight: window, count } = opts;
  const schedule = (conn: JsConn): void => {
    if (conn.scheduled || !running) return;
    conn.scheduled = true;
    setImmediate(() => {
      conn.scheduled = false;
      pump(conn);
    });
  };
  const pump = (conn: JsConn): void => {
    const ts = Date.now();
    const t = monoMs();
    while (running && conn.inflight < window) {
      if (count > 0 && totals.sentReadings >= count) return maybeFinishCount();
      const dev = conn.devices[conn.next]!;
      conn.next = (conn.next + 1) % conn.devices.length;
      const seq = dev.seq;
      let payload: Buffer;
      if (batch === 1) {
        const bpm = conn.bpms[seq & (BPM_TABLE - 1)]!;
        payload = Buffer.allocUnsafe(heartRateLen(seq, ts, bpm));
        writeHeartRate(payload, 0, seq, ts, bpm);
      } else {
        payload = Buffer.allocUnsafe(heartRateBatchLen(seq, batch, ts, conn.bpms));
        writeHeartRateBatch(payload, 0, seq, batch, ts, conn.bpms);
      }
      dev.seq = seq + batch;
      conn.inflight++;
      totals.sentPublishes++;
      totals.sentReadings += batch;
      conn.client.publish(dev.topic, payload, { qos }, (err) => {
        conn.inflight--;
        if (err) noteError(err);
        else if (qos === 1) {
          totals.ackedPublishes++;
          totals.ackedReadings += batch;
          if (measuring) latency.record(monoMs() - t);
        }
        schedule(conn);
      });
    }
  };
  startClock(() => {
    for (const conn of conns) schedule(conn);
  });
  stopHooks.push(async () => {
    await waitUntil(() => conns.every((c) => c.inflight === 0), 3000);
    await Promise.all(conns.map((c) => new Promise<void>((resolve) => c.client.end(false, {}, () => resolve()))));
  });
  return () => conns.reduce((n, c) => n + c.inflight, 0);
}

// ---- the latency probe ---------------------------------------------------------------------

interface Trigger {
  /** Monotonic ms when the reading was written. */
  readonly at: number;
  readonly ts: number;
  readonly measured: boolean;
}

async function runProbe(): Promise<{ triggers: Trigger[]; puback: LatencyHistogram; sent: number }> {
  const topic = `sensors/bridge/${opts.prefix}-probe`;
  const conn = await openRaw(`${opts.prefix}-probe`, [{ topic: Buffer.from(topic), seq: 1 }], bpmTable(0));
  const rnd = seededRandom(opts.seed, 0x9e37);
  const triggers: Trigger[] = [];
  const puback = new LatencyHistogram();
  let seq = 1;
  let prevWindow = -1;
  conn.onPuback = (packetId) => {
    conn.inflight--;
    if (measuring) puback.record(monoMs() - conn.sentAt[packetId]!);
  };
  let timer: NodeJS.Timeout | null = null;
  startClock(() => {
    timer = setInterval(() => {
      if (!running || !conn.connected) return;
      const ts = Date.now();
      const win = Math.floor(ts / opts.probeWindowMs);
      const payload = encodeVehicleDetection(seq++, ts, 1, 1, 60 + Math.floor(rnd() * 60), 2);
      const packetId = (conn.nextId = conn.nextId === 65_535 ? 1 : conn.nextId + 1);
      const packet = publishPacket(topic, payload, 1, packetId);
      const at = monoMs();
      conn.sentAt[packetId] = at;
      conn.inflight++;
      conn.socket.write(packet);
      if (prevWindow >= 0 && win > prevWindow) triggers.push({ at, ts, measured: measuring });
      prevWindow = win;
    }, opts.probePeriodMs);
  });
  stopHooks.push(async () => {
    if (timer !== null) clearInterval(timer);
    await waitUntil(() => conn.inflight === 0 || !conn.connected, 1000);
    if (conn.connected) conn.socket.end(DISCONNECT);
  });
  return { triggers, puback, get sent() {
    return seq - 1;
  } };
}

// ---- clock, stop, result -------------------------------------------------------------------

const stopHooks: (() => Promise<void>)[] = [];
let finish: (() => void) | null = null;
const finished = new Promise<void>((resolve) => (finish = resolve));

function startClock(go: () => void): void {
  clockStarters.push(go);
}
const clockStarters: (() => void)[] = [];

function maybeFinishCount(): void {
  if (running) finish?.();
}

function waitUntil(cond: () => boolean, maxMs: number): Promise<void> {
  const deadline = monoMs() + maxMs;
  return new Promise((resolve) => {
    const check = (): void => {
      if (cond() || monoMs() >= deadline) resolve();
      else setTimeout(check, 5);
    };
    check();
  });
}

function round(n: number | null, digits = 3): number | null {
  return n === null ? null : Number(n.toFixed(digits));
}

function roundSummary(s: LatencySummary): Record<string, number | null> {
  return { n: s.n, p50: round(s.p50), p90: round(s.p90), p99: round(s.p99), max: round(s.max) };
}

async function main(): Promise<void> {
  const cpu0 = process.cpuUsage();
  let probe: Awaited<ReturnType<typeof runProbe>> | null = null;
  try {
    if (opts.mode === 'probe') probe = await runProbe();
    else if (opts.client === 'mqttjs') await runMqttJsLoad();
    else if (opts.client === 'raw') await runRawLoad();
    else fail(`--client must be raw or mqttjs, not ${opts.client}`);
  } catch (err) {
    fail(`connect failed: ${(err as Error).message}`);
  }
  emit({ event: 'started', mode: opts.mode });
  const t0 = monoMs();
  marks = null;
  const warmupMs = opts.warmup * 1000;
  const durationMs = opts.duration * 1000;
  if (opts.count > 0) {
    // Count mode: the whole run is measured; --duration bounds it.
    marks = { a: snap(), b: null };
    measuring = true;
    setTimeout(() => finish?.(), durationMs).unref();
  } else {
    setTimeout(() => {
      marks = { a: snap(), b: null };
      measuring = true;
    }, warmupMs);
    setTimeout(() => {
      if (marks !== null) marks.b = snap();
      measuring = false;
    }, warmupMs + durationMs);
    setTimeout(() => finish?.(), warmupMs + durationMs + opts.tail * 1000);
  }
  for (const go of clockStarters) go();
  await finished;
  running = false;
  if (marks !== null && marks.b === null) marks.b = snap();
  measuring = false;
  for (const hook of stopHooks) await hook();
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;

  if (probe !== null) {
    emit({
      event: 'result',
      mode: 'probe',
      sent: probe.sent,
      windowMs: opts.probeWindowMs,
      triggers: probe.triggers.map((t) => ({ at: round(t.at, 4), ts: t.ts, measured: t.measured })),
      puback: roundSummary(probe.puback.summary()),
      errors,
      lastError,
      cpuSeconds: round(cpuSeconds),
    });
    process.exit(0);
  }
  const a = marks?.a ?? snap();
  const b = marks?.b ?? snap();
  const seconds = (b.t - a.t) / 1000;
  const measuredReadings = opts.qos === 1 ? b.ackedReadings - a.ackedReadings : b.sentReadings - a.sentReadings;
  emit({
    event: 'result',
    mode: 'load',
    client: opts.client,
    qos: opts.qos,
    batch: opts.batch,
    connections: opts.connections,
    devices: opts.connections * opts.devices,
    inflight: opts.qos === 1 ? opts.inflight : null,
    seed: opts.seed,
    seconds: round(seconds),
    sent: b.sentReadings - a.sentReadings,
    acked: opts.qos === 1 ? b.ackedReadings - a.ackedReadings : null,
    publishes: opts.qos === 1 ? b.ackedPublishes - a.ackedPublishes : b.sentPublishes - a.sentPublishes,
    readingsPerSec: seconds > 0 ? Math.round(measuredReadings / seconds) : 0,
    totals,
    pubackLatencyMs: opts.qos === 1 ? roundSummary(latency.summary()) : null,
    wallSeconds: round((monoMs() - t0) / 1000),
    cpuSeconds: round(cpuSeconds),
    errors,
    lastError,
  });
  process.exit(0);
}

process.on('uncaughtException', (err) => fail(`uncaught: ${err.stack ?? err.message}`));
// The harness ends the load with SIGTERM once it has taken its last sample; --tail bounds the run.
process.on('SIGTERM', () => finish?.());
void main();

/**
 * Sparkplug B ingest beside the native protobuf path, in one run against one gateway process
 * (ingest.sparkplug enabled): readings/s each path sustains and their ratio.
 *
 *   npx tsx bench/sparkplug-bench.ts [--quick] [--reps N] [--duration S] [--connections 4] [--devices 25] [--inflight 128]
 *
 * Both paths publish one heart-rate reading per QoS 1 PUBLISH over raw MQTT 3.1.1 sockets (this
 * process; the gateway is another), at most --inflight unacknowledged per connection, round-robin
 * over the devices of each connection:
 *   native:    sensors/heart-rate/<id>, a HeartRateReading { seq, ts, bpm } (the fast protobuf path);
 *   sparkplug: each connection is an edge node (NBIRTH, then a DBIRTH per device declaring bpm
 *              alias 1), then DDATA spBv1.0/bench/DDATA/<edge>/<device> with seq 0-255 wrapping
 *              and the bpm by alias: birth lookup, alias resolution, seq mapping, the JSON ingest
 *              record (gateway/ingest/sparkplug-record.ts).
 * Sparkplug B says QoS 0 for data; QoS 1 here gives both paths the same ack-paced window.
 * Readings/s = the gateway's pulsegate_readings_received_total delta over the measured period;
 * CPU/reading = the gateway process's CPU time (user + system) over it, per reading received.
 * Each path runs once unmeasured first (JIT warm-up); then paths alternate per repetition. Run by bench/run.ts too (its "sparkplug" figures).
 */
import { connect as netConnect, type Socket } from 'node:net';
import { encodeSparkplugPayload } from '../gateway/ingest/sparkplug-payload.js';
import { Args } from './lib/args.js';
import { cpuSeconds, sleep } from './lib/procs.js';
import { median, monoMs } from './lib/stats.js';
import { metricSum, scrapeGateway, startPulsegate } from './lib/suts.js';
import { connectPacket, FrameParser, heartRateLen, PACKET, publishPacket, publishPacketId, writeHeartRate } from './lib/wire.js';

export interface SparkplugBenchSettings {
  readonly reps: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly connections: number;
  readonly devicesPerConnection: number;
  readonly inflight: number;
}

export interface SparkplugBenchResult {
  readonly settings: SparkplugBenchSettings;
  /** Median readings/s per path. */
  readonly nativeReadingsPerSec: number;
  readonly sparkplugReadingsPerSec: number;
  /** sparkplug / native, same run. */
  readonly ratio: number;
  /** Median gateway CPU time per reading (user + system), µs. */
  readonly nativeCpuUsPerReading: number | null;
  readonly sparkplugCpuUsPerReading: number | null;
  readonly runs: readonly { readonly path: 'native' | 'sparkplug'; readonly rep: number; readonly readingsPerSec: number; readonly cpuUsPerReading: number | null }[];
  readonly rejected: number;
}

type Path = 'native' | 'sparkplug';

/** One connection's load: connect, (births), then publishes with at most `inflight` unacked until stopped. */
async function drive(port: number, path: Path, conn: number, rep: number, s: SparkplugBenchSettings, stop: { stopped: boolean }): Promise<void> {
  const socket: Socket = netConnect({ host: '127.0.0.1', port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  let inflight = 0;
  let wake: (() => void) | null = null;
  let connacked: (() => void) | null = null;
  const parser = new FrameParser((type, _flags, buf, start) => {
    if (type === PACKET.connack) connacked?.();
    else if (type === PACKET.puback) {
      void publishPacketId(buf, start);
      inflight--;
      wake?.();
    }
  });
  socket.on('data', (chunk: Buffer) => parser.push(chunk));
  socket.on('error', () => undefined);
  const edge = `r${rep}c${conn}${path[0]}`;
  socket.write(connectPacket(`bench-${edge}`));
  await new Promise<void>((resolve) => (connacked = resolve));
  const devices = Array.from({ length: s.devicesPerConnection }, (_, i) => `d${i}`);
  const ts = Date.now();
  let packetId = 0;
  const nextId = (): number => (packetId = (packetId % 65535) + 1);
  // Sparkplug: births, and the 256 DDATA payloads (one per seq) encoded ahead, as the native path's encoder is cheap.
  const ddata: Buffer[] = [];
  const topics = devices.map((d) => (path === 'native' ? `sensors/heart-rate/bench-${edge}-${d}` : `spBv1.0/bench/DDATA/${edge}/${d}`));
  let spSeq = 0;
  if (path === 'sparkplug') {
    socket.write(publishPacket(`spBv1.0/bench/NBIRTH/${edge}`, encodeSparkplugPayload({ timestamp: ts, seq: spSeq++, metrics: [{ name: 'bdSeq', type: 'UInt64', value: 0 }] }), 0, 0));
    for (const d of devices) {
      socket.write(publishPacket(`spBv1.0/bench/DBIRTH/${edge}/${d}`, encodeSparkplugPayload({ timestamp: ts, seq: spSeq++, metrics: [{ name: 'bpm', alias: 1, type: 'Int32', value: 60 }] }), 0, 0));
    }
    for (let q = 0; q < 256; q++) ddata.push(encodeSparkplugPayload({ timestamp: ts, seq: q, metrics: [{ alias: 1, type: 'Int32', value: 60 + (q % 80) }] }));
  }
  const seqs = new Array<number>(devices.length).fill(0);
  let d = 0;
  while (!stop.stopped) {
    if (inflight >= s.inflight) {
      await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
      continue;
    }
    let payload: Buffer;
    if (path === 'native') {
      const seq = ++seqs[d]!;
      const bpm = 60 + (seq % 80);
      payload = Buffer.allocUnsafe(heartRateLen(seq, ts, bpm));
      writeHeartRate(payload, 0, seq, ts, bpm);
    } else {
      payload = ddata[spSeq]!;
      spSeq = (spSeq + 1) % 256;
    }
    inflight++;
    const ok = socket.write(publishPacket(topics[d]!, payload, 1, nextId()));
    d = (d + 1) % devices.length;
    if (!ok) await new Promise<void>((resolve) => socket.once('drain', () => resolve()));
  }
  socket.destroy();
}

async function received(httpPort: number): Promise<{ at: number; n: number; rejected: number }> {
  const { at, metrics } = await scrapeGateway(httpPort);
  return { at, n: metricSum(metrics, 'pulsegate_readings_received_total'), rejected: metricSum(metrics, 'pulsegate_readings_rejected_total') };
}

export async function runSparkplugBench(s: SparkplugBenchSettings, log: (line: string) => void = () => undefined): Promise<SparkplugBenchResult> {
  const gw = await startPulsegate({ sparkplug: true });
  const runs: { path: Path; rep: number; readingsPerSec: number; cpuUsPerReading: number | null }[] = [];
  let rejected = 0;
  try {
    // Unmeasured first: each path once, so that neither pays the gateway's JIT warm-up alone.
    for (const path of ['native', 'sparkplug'] as const) {
      const stop = { stopped: false };
      const loads = Array.from({ length: s.connections }, (_, c) => drive(gw.mqttPort!, path, c, -1, s, stop));
      await sleep(Math.max(1000, s.warmupS * 2000));
      stop.stopped = true;
      await Promise.all(loads);
    }
    for (let rep = 0; rep < s.reps; rep++) {
      const order: Path[] = rep % 2 === 0 ? ['native', 'sparkplug'] : ['sparkplug', 'native'];
      for (const path of order) {
        const stop = { stopped: false };
        const loads = Array.from({ length: s.connections }, (_, c) => drive(gw.mqttPort!, path, c, rep, s, stop));
        await sleep(s.warmupS * 1000);
        const a = await received(gw.httpPort!);
        const cpuA = cpuSeconds(gw.pid);
        await sleep(s.durationS * 1000);
        const b = await received(gw.httpPort!);
        const cpuB = cpuSeconds(gw.pid);
        stop.stopped = true;
        await Promise.all(loads);
        const readingsPerSec = Math.round(((b.n - a.n) * 1000) / (b.at - a.at));
        // Gateway CPU per reading: steadier than readings/s on a machine shared with other work.
        const cpuUsPerReading = cpuA === null || cpuB === null || b.n === a.n ? null : Math.round(((cpuB - cpuA) * 1e6 * 10) / (b.n - a.n)) / 10;
        rejected += b.rejected - a.rejected;
        runs.push({ path, rep, readingsPerSec, cpuUsPerReading });
        log(`  rep ${rep + 1} ${path.padEnd(9)} ${readingsPerSec.toLocaleString('en-US').padStart(11)} readings/s  ${String(cpuUsPerReading ?? '-').padStart(6)} gateway CPU us/reading`);
        // Let the gateway finish what is in flight before the other path starts.
        await sleep(300);
      }
    }
  } finally {
    await gw.stop();
  }
  const med = (p: Path): number => median(runs.filter((r) => r.path === p).map((r) => r.readingsPerSec)) ?? 0;
  const nativeReadingsPerSec = med('native');
  const sparkplugReadingsPerSec = med('sparkplug');
  const cpu = (p: Path): number | null => median(runs.filter((r) => r.path === p && r.cpuUsPerReading !== null).map((r) => r.cpuUsPerReading!));
  return { settings: s, nativeReadingsPerSec, sparkplugReadingsPerSec, nativeCpuUsPerReading: cpu('native'), sparkplugCpuUsPerReading: cpu('sparkplug'), ratio: nativeReadingsPerSec > 0 ? Math.round((sparkplugReadingsPerSec / nativeReadingsPerSec) * 1000) / 1000 : 0, runs, rejected };
}

export function sparkplugBenchSettings(args: Args, quick: boolean): SparkplugBenchSettings {
  return {
    reps: Math.max(1, Math.floor(args.num('reps', quick ? 1 : 3))),
    durationS: args.num('duration', quick ? 1.5 : 3),
    warmupS: args.num('warmup', quick ? 0.4 : 0.5),
    connections: args.num('connections', 4),
    devicesPerConnection: args.num('devices', 25),
    inflight: args.num('inflight', 128),
  };
}

const isMain = process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop()!);
if (isMain) {
  const args = new Args(process.argv.slice(2));
  const settings = sparkplugBenchSettings(args, args.has('quick'));
  const started = monoMs();
  const r = await runSparkplugBench(settings, (l) => process.stdout.write(`${l}\n`));
  process.stdout.write(
    `sparkplug bench: native ${r.nativeReadingsPerSec.toLocaleString('en-US')} readings/s (${String(r.nativeCpuUsPerReading)} us CPU/reading), ` +
      `Sparkplug B ${r.sparkplugReadingsPerSec.toLocaleString('en-US')} readings/s (${String(r.sparkplugCpuUsPerReading)} us CPU/reading), ratio ${r.ratio} ` +
      `(medians of ${settings.reps}; ${settings.connections} connections x ${settings.devicesPerConnection} devices, QoS 1 window ${settings.inflight}; rejected ${r.rejected}; ${((monoMs() - started) / 1000).toFixed(0)} s)\n`,
  );
}

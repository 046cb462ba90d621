/**
 * Cost of the MQTT packet guard on the read path aedes uses: a stream read with read(null) whose
 * chunks go to mqtt-packet's parser (what lib/client.js does on 'readable'). The same chunks of
 * small QoS 0 and QoS 1 publishes (the shape of the benchmark's sensor traffic) are read through
 * a plain stream and through one wrapped by guardConnection; runs alternate A/B so both see the
 * same machine state; the best run of each is printed (on a shared machine the slower runs measure
 * the neighbours) and the median of the guarded/plain ratios of adjacent runs. Also prints the
 * scanner alone per packet, the figure least disturbed by the neighbours. Prints figures; not a test.
 *
 *   node --expose-gc --import tsx bench/packet-guard-bench.ts [--quick]   (collects garbage between runs)
 *   npx tsx bench/packet-guard-bench.ts [--quick]
 */
import { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import mqttPacket from 'mqtt-packet';
import { guardConnection, PacketScanner } from '../gateway/ingest/packet-guard.js';

const quick = process.argv.includes('--quick');
const PACKETS = quick ? 200_000 : 1_000_000;
const REPS = quick ? 11 : 21;
const CHUNK = 65_536; // a socket read on loopback

function buildStream(qos: 0 | 1): Buffer[] {
  const parts: Buffer[] = [mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'bench', clean: true, keepalive: 0 } as mqttPacket.IConnectPacket)];
  // A heart-rate reading in protobuf is about 12 bytes; the topic names the device.
  const payload = Buffer.from([0x08, 0x01, 0x10, 0xe8, 0xc2, 0xb1, 0xa8, 0xc3, 0x32, 0x18, 0x48, 0x20]);
  for (let i = 0; i < PACKETS; i++) {
    const topic = `sensors/heart-rate/dev-${String(i % 1000).padStart(6, '0')}`;
    parts.push(mqttPacket.generate({ cmd: 'publish', topic, payload, qos, messageId: qos === 0 ? undefined : 1 + (i % 65535), retain: false, dup: false } as mqttPacket.IPublishPacket));
  }
  const all = Buffer.concat(parts);
  const chunks: Buffer[] = [];
  for (let off = 0; off < all.length; off += CHUNK) chunks.push(all.subarray(off, off + CHUNK));
  return chunks;
}

/** Packets per second through push -> read(null) -> parser.parse, guarded or not. */
function runParse(chunks: readonly Buffer[], guarded: boolean): number {
  const conn = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
  if (guarded) guardConnection(conn, { maxConnectBytes: 16_384, maxPacketBytes: 1_048_576, packetTimeoutMs: 30_000, onRefused: (r) => { throw new Error(`refused: ${r}`); } });
  const parser = mqttPacket.parser();
  let packets = 0;
  parser.on('packet', () => packets++);
  const t0 = performance.now();
  for (const c of chunks) {
    conn.push(c);
    const b = conn.read() as Buffer | null; // aedes passes null: the same as no size
    if (b !== null) parser.parse(b);
  }
  const ms = performance.now() - t0;
  conn.destroy();
  if (packets !== PACKETS + 1) throw new Error(`parsed ${packets} packets, expected ${PACKETS + 1}`);
  return (packets / ms) * 1000;
}

function runScanOnly(chunks: readonly Buffer[]): number {
  const scanner = new PacketScanner(16_384, 1_048_576);
  const t0 = performance.now();
  for (const c of chunks) if (scanner.scan(c) !== -1) throw new Error('refused');
  const ms = performance.now() - t0;
  return (ms * 1e6) / (PACKETS + 1);
}


for (const qos of [0, 1] as const) {
  const chunks = buildStream(qos);
  runParse(chunks, false); // warm-up
  runParse(chunks, true);
  const plain: number[] = [];
  const guarded: number[] = [];
  const scan: number[] = [];
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
  for (let r = 0; r < REPS; r++) {
    // Alternate which goes first, so neither always inherits the other's garbage.
    for (const guard of r % 2 === 0 ? [false, true] : [true, false]) {
      gc();
      (guard ? guarded : plain).push(runParse(chunks, guard));
    }
    scan.push(runScanOnly(chunks));
  }
  const p = Math.max(...plain);
  const g = Math.max(...guarded);
  const ratios = guarded.map((x, k) => x / plain[k]!).sort((a, b) => a - b);
  const medianRatio = ratios[Math.floor(ratios.length / 2)]!;
  console.log(
    `QoS ${qos}: ${PACKETS} publishes of ${chunks.reduce((n, c) => n + c.length, 0) / (PACKETS + 1) | 0} B in ${CHUNK} B chunks | ` +
      `parser alone ${(p / 1000).toFixed(0)}k packets/s (${(1e9 / p).toFixed(0)} ns/packet) | ` +
      `guard + parser ${(g / 1000).toFixed(0)}k packets/s (${(1e9 / g).toFixed(0)} ns/packet) | ` +
      `guarded/plain median of ${REPS} paired runs ${medianRatio.toFixed(3)} (range ${ratios[0]!.toFixed(2)}-${ratios[ratios.length - 1]!.toFixed(2)}) | ` +
      `scanner alone ${Math.min(...scan).toFixed(1)} ns/packet`,
  );
}

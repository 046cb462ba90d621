/**
 * Load for bench/mapped-ingest-bench.ts, as its own process: QoS 1 publishes of one payload shape
 * over raw MQTT 3.1.1 connections, at most --inflight unacknowledged per connection, round-robin
 * over each connection's devices, until SIGTERM. The same client for every shape, so the shapes
 * differ only in what the gateway does with them:
 *   protobuf   sensors/heart-rate/<id>, one HeartRateReading (seq +1 per device, ts = now)
 *   tasmota    tele/<id>/SENSOR, {"Time":"<now, to the second>","ENERGY":{..,"Power":..}} (no seq)
 *   zigbee     zigbee2mqtt/<id>, {"temperature":..,"humidity":..,..} (no ts, no seq)
 * JSON payloads vary from one publish to the next (a device without seq is deduplicated by content).
 *
 *   tsx bench/mapped-publisher.ts --port P --shape protobuf|tasmota|zigbee [--connections 4]
 *       [--devices 25] [--inflight 128] [--prefix id]
 * Prints {"event":"started"} once connected, {"event":"result",...} after SIGTERM.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { Args } from './lib/args.js';
import { connectPacket, FrameParser, heartRateLen, PACKET, publishPacket, writeHeartRate } from './lib/wire.js';

const args = new Args(process.argv.slice(2));
const port = args.num('port', 1883);
const shape = args.str('shape', 'protobuf');
const connections = Math.max(1, args.num('connections', 4));
const devices = Math.max(1, args.num('devices', 25));
const inflight = Math.max(1, args.num('inflight', 128));
const prefix = args.str('prefix', 'mb');
if (!['protobuf', 'tasmota', 'zigbee'].includes(shape)) {
  process.stdout.write(JSON.stringify({ event: 'error', message: `unknown --shape ${shape}` }) + '\n');
  process.exit(2);
}

let acked = 0;
let sent = 0;
let running = true;

function topicOf(id: string): string {
  return shape === 'protobuf' ? `sensors/heart-rate/${id}` : shape === 'tasmota' ? `tele/${id}/SENSOR` : `zigbee2mqtt/${id}`;
}

function payloadOf(seq: number): Buffer {
  if (shape === 'protobuf') {
    const buf = Buffer.allocUnsafe(heartRateLen(seq, Date.now(), 60 + (seq % 100)));
    writeHeartRate(buf, 0, seq, Date.now(), 60 + (seq % 100));
    return buf;
  }
  if (shape === 'tasmota') {
    const power = 100 + (seq % 1000);
    return Buffer.from(
      `{"Time":"${new Date().toISOString().slice(0, 19)}","ENERGY":{"TotalStartTime":"2026-01-01T00:00:00","Total":${(seq / 1000).toFixed(3)},"Yesterday":1.234,"Today":0.456,"Period":0,"Power":${power},"ApparentPower":${power + 5},"ReactivePower":30,"Factor":0.95,"Voltage":230,"Current":${(power / 230).toFixed(3)}}}`,
    );
  }
  return Buffer.from(`{"battery":97,"humidity":${(40 + (seq % 200) / 10).toFixed(1)},"linkquality":${seq % 256},"temperature":${(20 + (seq % 500) / 100).toFixed(2)},"voltage":2980}`);
}

interface Conn {
  socket: Socket;
  topics: string[];
  seqs: number[];
  next: number;
  inflight: number;
  nextId: number;
}

function open(i: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ port, host: '127.0.0.1', noDelay: true });
    const ids = Array.from({ length: devices }, (_, d) => `${prefix}-c${i}-d${d}`);
    const c: Conn = { socket, topics: ids.map(topicOf), seqs: ids.map(() => 0), next: 0, inflight: 0, nextId: 1 };
    const parser = new FrameParser((type) => {
      if (type === PACKET.connack) resolve(c);
      else if (type === PACKET.puback) {
        c.inflight--;
        acked++;
        pump(c);
      }
    });
    socket.on('data', (d) => parser.push(d));
    socket.on('error', reject);
    socket.on('drain', () => pump(c));
    socket.write(connectPacket(`${prefix}-${shape}-c${i}`));
  });
}

function pump(c: Conn): void {
  while (running && c.inflight < inflight) {
    const d = c.next;
    c.next = (c.next + 1) % c.topics.length;
    const seq = ++c.seqs[d]!;
    const id = c.nextId;
    c.nextId = c.nextId === 65_535 ? 1 : c.nextId + 1;
    c.inflight++;
    sent++;
    if (!c.socket.write(publishPacket(c.topics[d]!, payloadOf(seq), 1, id))) return;
  }
}

const conns = await Promise.all(Array.from({ length: connections }, (_, i) => open(i)));
process.stdout.write(JSON.stringify({ event: 'started' }) + '\n');
for (const c of conns) pump(c);
process.on('SIGTERM', () => {
  running = false;
  process.stdout.write(JSON.stringify({ event: 'result', sent, acked }) + '\n');
  for (const c of conns) c.socket.destroy();
  process.exit(0);
});

import { Duplex } from 'node:stream';
import mqttPacket from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { guardConnection, PacketScanner } from '../../../gateway/ingest/packet-guard.js';
import { mulberry32 } from '../../helpers/random.js';

const gen = (p: Record<string, unknown>): Buffer => mqttPacket.generate(p as unknown as mqttPacket.Packet);
const connect = (extra: Record<string, unknown> = {}) => gen({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'dev-1', clean: true, keepalive: 0, ...extra });
const publish = (qos: 0 | 1 | 2, messageId: number | undefined, payload: Buffer, topic = 'sensors/heart-rate/dev-1') =>
  gen({ cmd: 'publish', topic, payload, qos, messageId, retain: false, dup: false });

/**
 * Feeds `bytes` to a scanner in chunks cut at seeded random places. Returns -1 when all passed,
 * else the stream offset the verdict points at: the refused packet's start when it began in the
 * refusing chunk, else that chunk's start (the scanner answers 0: "it began before this chunk").
 */
function scanInPieces(scanner: PacketScanner, bytes: Buffer, seed: number, maxPiece = 7): { cutAt: number } {
  const rand = mulberry32(seed);
  let offset = 0;
  while (offset < bytes.length) {
    const n = 1 + Math.floor(rand() * maxPiece);
    const chunk = bytes.subarray(offset, offset + n);
    const cut = scanner.scan(chunk);
    if (cut >= 0) return { cutAt: offset + cut };
    offset += chunk.length;
  }
  return { cutAt: -1 };
}

/** The scanner's answer is right when it points at the packet's start, or at a chunk inside it. */
function pointsAt(cutAt: number, packetStart: number, packetEnd: number): boolean {
  return cutAt >= packetStart && cutAt < packetEnd;
}

describe('PacketScanner', () => {
  it('should accept a valid stream of CONNECT, PUBLISHes of every QoS, SUBSCRIBE and PINGREQ however it is cut', () => {
    const stream = Buffer.concat([
      connect({ username: 'u', password: Buffer.from('p'), will: { topic: 'w', payload: Buffer.from('bye'), qos: 1, retain: false } }),
      publish(0, undefined, Buffer.alloc(300, 1)),
      publish(1, 1, Buffer.alloc(200, 2)),
      publish(2, 65535, Buffer.alloc(0)),
      gen({ cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: 'alerts/#', qos: 1 }] }),
      gen({ cmd: 'pingreq' }),
      publish(1, 256, Buffer.alloc(20_000, 3)),
    ]);
    for (let seed = 1; seed <= 50; seed++) {
      const scanner = new PacketScanner(16_384, 1_048_576);
      expect(scanInPieces(scanner, stream, seed).cutAt, `seed ${seed}`).toBe(-1);
      expect(scanner.midPacket).toBe(false);
      expect(scanner.packetsStarted).toBe(7);
    }
  });

  it('a CONNECT declaring 200 MiB is refused from its fixed header, before any of its body', () => {
    const scanner = new PacketScanner(16_384, 1_048_576);
    // 0x10, remaining length 209,715,200 as a variable byte integer [MQTT-2.2.3].
    const header = Buffer.from([0x10, 0x80, 0x80, 0x80, 0x64]);
    expect(scanner.scan(header)).toBe(0);
    expect(scanner.refusal?.reason).toBe('connect_too_large');
  });

  it('a 16 MiB PUBLISH after a CONNECT is refused at its own first byte, the CONNECT before it passes', () => {
    const c = connect();
    const big = publish(0, undefined, Buffer.alloc(16 * 1024 * 1024));
    const scanner = new PacketScanner(16_384, 1_048_576);
    expect(scanner.scan(Buffer.concat([c, big.subarray(0, 1000)]))).toBe(c.length);
    expect(scanner.refusal?.reason).toBe('packet_too_large');
    // The same with a 2-byte remaining length, the whole packet inside one chunk.
    const small = new PacketScanner(16_384, 100);
    expect(small.scan(Buffer.concat([c, publish(0, undefined, Buffer.alloc(200))]))).toBe(c.length);
    expect(small.refusal?.reason).toBe('packet_too_large');
    // A packet of exactly the bound is accepted.
    const exact = new PacketScanner(16_384, 1000);
    const p = publish(0, undefined, Buffer.alloc(1000 - 2 - 'sensors/heart-rate/dev-1'.length));
    expect(exact.scan(Buffer.concat([c, p]))).toBe(-1);
  });

  it('a CONNECT with protocol level 9 is refused as protocol_version; levels 4 (MQTT), 3 (MQIsdp) and bridges pass', () => {
    const level9 = Buffer.from(connect());
    level9[8] = 9; // 0x10, length, 0x00 0x04 "MQTT", level
    for (let seed = 1; seed <= 20; seed++) {
      const scanner = new PacketScanner(16_384, 1_048_576);
      expect(pointsAt(scanInPieces(scanner, level9, seed, 3).cutAt, 0, level9.length)).toBe(true);
      expect(scanner.refusal?.reason).toBe('protocol_version');
    }
    const mqtt5 = new PacketScanner(16_384, 1_048_576);
    expect(mqtt5.scan(connect({ protocolVersion: 5 }))).toBe(0);
    expect(mqtt5.refusal?.reason).toBe('protocol_version');
    const mqIsdp4 = Buffer.from(connect({ protocolId: 'MQIsdp', protocolVersion: 3 }));
    mqIsdp4[10] = 4;
    const wrong = new PacketScanner(16_384, 1_048_576);
    expect(wrong.scan(mqIsdp4)).toBe(0);
    expect(wrong.refusal?.reason).toBe('protocol_version');
    expect(new PacketScanner(16_384, 1_048_576).scan(connect({ protocolId: 'MQIsdp', protocolVersion: 3 }))).toBe(-1);
    const bridge = Buffer.from(connect());
    bridge[8] = 0x84;
    expect(new PacketScanner(16_384, 1_048_576).scan(bridge)).toBe(-1);
  });

  it('a QoS 1 PUBLISH with packet id 0 is refused however its id is split; QoS 0 has no id to check', () => {
    const c = connect();
    const bad = publish(1, 0, Buffer.from('{"seq":1}'));
    const good = publish(1, 1, Buffer.from('{"seq":1}'));
    for (let seed = 1; seed <= 30; seed++) {
      const scanner = new PacketScanner(16_384, 1_048_576);
      const { cutAt } = scanInPieces(scanner, Buffer.concat([c, good, bad]), seed, 4);
      expect(pointsAt(cutAt, c.length + good.length, c.length + good.length + bad.length), `seed ${seed}: ${cutAt}`).toBe(true);
      expect(scanner.refusal?.reason).toBe('packet_id_zero');
    }
    const qos2 = new PacketScanner(16_384, 1_048_576);
    expect(qos2.scan(Buffer.concat([c, publish(2, 0, Buffer.from('x'))]))).toBe(c.length);
    expect(new PacketScanner(16_384, 1_048_576).scan(Buffer.concat([c, publish(0, undefined, Buffer.from([0, 0, 0]), 'a')]))).toBe(-1);
  });

  it('a SUBSCRIBE or UNSUBSCRIBE with packet id 0 is refused, whole in a chunk or split', () => {
    const c = connect();
    for (const bad of [gen({ cmd: 'subscribe', messageId: 0, subscriptions: [{ topic: 'alerts/#', qos: 0 }] }), gen({ cmd: 'unsubscribe', messageId: 0, unsubscriptions: ['alerts/#'] })]) {
      const whole = new PacketScanner(16_384, 1_048_576);
      expect(whole.scan(Buffer.concat([c, bad]))).toBe(c.length);
      expect(whole.refusal?.reason).toBe('packet_id_zero');
      const split = new PacketScanner(16_384, 1_048_576);
      expect(pointsAt(scanInPieces(split, Buffer.concat([c, bad]), 3, 2).cutAt, c.length, c.length + bad.length)).toBe(true);
    }
    expect(new PacketScanner(16_384, 1_048_576).scan(Buffer.concat([c, gen({ cmd: 'unsubscribe', messageId: 9, unsubscriptions: ['a'] })]))).toBe(-1);
  });

  it('a first packet other than CONNECT is refused at its first byte', () => {
    const scanner = new PacketScanner(16_384, 1_048_576);
    expect(scanner.scan(publish(0, undefined, Buffer.from('x')))).toBe(0);
    expect(scanner.refusal?.reason).toBe('not_connect_first');
  });

  it('a remaining length of five bytes is refused as malformed', () => {
    const scanner = new PacketScanner(16_384, 268_435_455);
    expect(scanner.scan(Buffer.concat([connect(), Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])]))).toBe(connect().length);
    expect(scanner.refusal?.reason).toBe('malformed_length');
  });

  it('should report a packet under way until its last byte has been seen', () => {
    const c = connect();
    const scanner = new PacketScanner(16_384, 1_048_576);
    expect(scanner.scan(c.subarray(0, 1))).toBe(-1);
    expect(scanner.midPacket).toBe(true);
    expect(scanner.scan(c.subarray(1, c.length - 1))).toBe(-1);
    expect(scanner.midPacket).toBe(true);
    expect(scanner.scan(c.subarray(c.length - 1))).toBe(-1);
    expect(scanner.midPacket).toBe(false);
  });
});

describe('guardConnection: a client that does not read what it is sent', () => {
  it('is not read while its outgoing bytes wait (the stream needs draining), and is told readable again once they drained', async () => {
    // A real Duplex whose far end stops reading: write callbacks are held until released.
    const held: (() => void)[] = [];
    const conn = new Duplex({
      highWaterMark: 64,
      read() {},
      write(_chunk, _enc, cb) {
        held.push(() => cb());
      },
    });
    const guarded = guardConnection(conn, { maxConnectBytes: 16_384, maxPacketBytes: 1_048_576, packetTimeoutMs: 60_000, onRefused: () => {} });
    let readable = 0;
    guarded.on('readable', () => readable++);
    guarded.push(connect());
    expect(guarded.read()).toEqual(connect());
    // Answers pile up unsent: past the high-water mark the stream needs draining.
    for (let i = 0; i < 40; i++) guarded.write(Buffer.from([0x40, 0x02, 0x00, i + 1]));
    expect(guarded.writableNeedDrain).toBe(true);
    const pingreq = gen({ cmd: 'pingreq' });
    guarded.push(pingreq);
    expect(guarded.read()).toBeNull(); // not read: the client is not reading its answers
    await new Promise((resolve) => setImmediate(resolve)); // the push's own 'readable' has fired
    const before = readable;
    while (held.length > 0) held.shift()!();
    await new Promise((resolve) => setImmediate(resolve));
    expect(guarded.writableNeedDrain).toBe(false);
    expect(readable).toBeGreaterThan(before);
    expect(guarded.read()).toEqual(pingreq);
    guarded.destroy();
  });
});

describe('guardConnection: a client that never reads what it is sent', () => {
  it('is closed after mqtt.packetTimeoutMs as not_reading, whatever its keepalive', async () => {
    const conn = new Duplex({ highWaterMark: 64, read() {}, write() {} }); // write callbacks never come
    const refusals: string[] = [];
    const guarded = guardConnection(conn, { maxConnectBytes: 16_384, maxPacketBytes: 1_048_576, packetTimeoutMs: 150, onRefused: (reason) => refusals.push(reason) });
    guarded.push(connect());
    expect(guarded.read()).toEqual(connect());
    for (let i = 0; i < 40; i++) guarded.write(Buffer.from([0x40, 0x02, 0x00, i + 1]));
    guarded.push(gen({ cmd: 'pingreq' }));
    const startedAt = Date.now();
    expect(guarded.read()).toBeNull();
    await new Promise<void>((resolve) => guarded.once('close', () => resolve()));
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(140);
    expect(refusals).toEqual(['not_reading']);
  });
});

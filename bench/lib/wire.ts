/**
 * Minimal MQTT 3.1.1 framing and protobuf encoding for the benchmark processes.
 *
 * The publisher writes PUBLISH packets (and their protobuf payloads) straight into one large
 * buffer per socket write, so no per-message objects are allocated; the sink, the subscriber and
 * the publisher read packets with the same streaming frame parser. Only what the benchmark needs
 * is here: CONNECT/CONNACK, PUBLISH/PUBACK, SUBSCRIBE/SUBACK, PINGREQ/PINGRESP, DISCONNECT.
 */

export const PACKET = {
  connect: 1,
  connack: 2,
  publish: 3,
  puback: 4,
  subscribe: 8,
  suback: 9,
  pingreq: 12,
  pingresp: 13,
  disconnect: 14,
} as const;

// ---- varints (protobuf and MQTT remaining length share the base-128 encoding) -----------------

/** Bytes of a base-128 varint for a non-negative safe integer. */
export function varintLen(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x20_0000) return 3;
  if (n < 0x1000_0000) return 4;
  let len = 4;
  let v = Math.floor(n / 0x1000_0000);
  while (v > 0) {
    len++;
    v = Math.floor(v / 0x80);
  }
  return len;
}

/** Writes a base-128 varint of a non-negative safe integer at `off`; returns the new offset. */
export function writeVarint(buf: Buffer, off: number, n: number): number {
  if (n < 0x8000_0000) {
    let v = n | 0;
    while (v >= 0x80) {
      buf[off++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[off++] = v;
    return off;
  }
  let v = n;
  while (v >= 0x80) {
    buf[off++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[off++] = v;
  return off;
}

// ---- protobuf payloads (proto/pulsegate.proto) ---------------------------------------------

/** Encoded size of a HeartRateReading { seq = 1, ts = 2, bpm = 3 } (rr_ms left unset). */
export function heartRateLen(seq: number, ts: number, bpm: number): number {
  return 3 + varintLen(seq) + varintLen(ts) + varintLen(bpm);
}

export function writeHeartRate(buf: Buffer, off: number, seq: number, ts: number, bpm: number): number {
  buf[off++] = 0x08; // field 1 (seq), varint
  off = writeVarint(buf, off, seq);
  buf[off++] = 0x10; // field 2 (ts), varint
  off = writeVarint(buf, off, ts);
  buf[off++] = 0x18; // field 3 (bpm), varint
  return writeVarint(buf, off, bpm);
}

/** Largest encoded HeartRateReading for seq and ts below 2^53 and bpm below 2^14. */
export const MAX_HEART_RATE_LEN = 3 + 8 + 8 + 2;

/** HeartRateBatch: field 1 (readings), length-delimited, repeated; first byte 0x0a. */
export function heartRateBatchLen(firstSeq: number, count: number, ts: number, bpms: Uint8Array): number {
  let len = 0;
  for (let i = 0; i < count; i++) {
    const seq = firstSeq + i;
    const r = heartRateLen(seq, ts, bpms[seq & (bpms.length - 1)]!);
    len += 1 + varintLen(r) + r;
  }
  return len;
}

export function writeHeartRateBatch(buf: Buffer, off: number, firstSeq: number, count: number, ts: number, bpms: Uint8Array): number {
  for (let i = 0; i < count; i++) {
    const seq = firstSeq + i;
    const bpm = bpms[seq & (bpms.length - 1)]!;
    buf[off++] = 0x0a;
    off = writeVarint(buf, off, heartRateLen(seq, ts, bpm));
    off = writeHeartRate(buf, off, seq, ts, bpm);
  }
  return off;
}

/**
 * VehicleDetection { seq = 1, ts = 2, lane = 3, vehicle_class = 4, speed_kmh = 5 (float),
 * axles = 6 }: the latency probe's reading. Returns the encoded message.
 */
export function encodeVehicleDetection(seq: number, ts: number, lane: number, vehicleClass: number, speedKmh: number, axles: number): Buffer {
  const buf = Buffer.allocUnsafe(3 * 8 + 5 + 8 + 2);
  let off = 0;
  buf[off++] = 0x08;
  off = writeVarint(buf, off, seq);
  buf[off++] = 0x10;
  off = writeVarint(buf, off, ts);
  buf[off++] = 0x18;
  off = writeVarint(buf, off, lane);
  buf[off++] = 0x20;
  off = writeVarint(buf, off, vehicleClass);
  buf[off++] = 0x2d; // field 5, fixed32
  buf.writeFloatLE(speedKmh, off);
  off += 4;
  buf[off++] = 0x30;
  off = writeVarint(buf, off, axles);
  return buf.subarray(0, off);
}

// ---- MQTT packets ---------------------------------------------------------------------------

/** Writes a PUBLISH fixed header + topic (+ packet id at QoS 1); the payload of `payloadLen` follows. */
export function writePublishHeader(buf: Buffer, off: number, topic: Buffer, qos: 0 | 1, packetId: number, payloadLen: number): number {
  buf[off++] = qos === 1 ? 0x32 : 0x30;
  off = writeVarint(buf, off, 2 + topic.length + (qos === 1 ? 2 : 0) + payloadLen);
  buf[off++] = topic.length >>> 8;
  buf[off++] = topic.length & 0xff;
  off += topic.copy(buf, off);
  if (qos === 1) {
    buf[off++] = packetId >>> 8;
    buf[off++] = packetId & 0xff;
  }
  return off;
}

/** Upper bound of a PUBLISH header for `topic` (fixed header with a 4-byte length, topic, packet id). */
export function maxPublishHeaderLen(topic: Buffer): number {
  return 1 + 4 + 2 + topic.length + 2;
}

export function publishPacket(topic: string, payload: Buffer, qos: 0 | 1, packetId: number): Buffer {
  const t = Buffer.from(topic);
  const buf = Buffer.allocUnsafe(maxPublishHeaderLen(t) + payload.length);
  let off = writePublishHeader(buf, 0, t, qos, packetId, payload.length);
  off += payload.copy(buf, off);
  return buf.subarray(0, off);
}

function withFixedHeader(type: number, flags: number, body: Buffer): Buffer {
  const head = Buffer.allocUnsafe(5);
  head[0] = (type << 4) | flags;
  const end = writeVarint(head, 1, body.length);
  return Buffer.concat([head.subarray(0, end), body]);
}

function utf8Field(s: string): Buffer {
  const b = Buffer.from(s);
  const out = Buffer.allocUnsafe(2 + b.length);
  out.writeUInt16BE(b.length, 0);
  b.copy(out, 2);
  return out;
}

/** CONNECT, MQTT 3.1.1 (protocol level 4), clean session; with a username and password when given. */
export function connectPacket(clientId: string, keepaliveS = 60, login?: { username: string; password: string }): Buffer {
  const keepalive = Buffer.allocUnsafe(2);
  keepalive.writeUInt16BE(keepaliveS, 0);
  // Connect flags [MQTT-3.1.2.3]: 0x02 clean session, 0x80 username, 0x40 password.
  const flags = login === undefined ? 0x02 : 0xc2;
  const fields = [utf8Field('MQTT'), Buffer.from([4, flags]), keepalive, utf8Field(clientId)];
  if (login !== undefined) fields.push(utf8Field(login.username), utf8Field(login.password));
  return withFixedHeader(PACKET.connect, 0, Buffer.concat(fields));
}

export function subscribePacket(packetId: number, filter: string, qos: 0 | 1): Buffer {
  const id = Buffer.allocUnsafe(2);
  id.writeUInt16BE(packetId, 0);
  return withFixedHeader(PACKET.subscribe, 0x02, Buffer.concat([id, utf8Field(filter), Buffer.from([qos])]));
}

export const CONNACK_OK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
export const PINGREQ = Buffer.from([0xc0, 0x00]);
export const PINGRESP = Buffer.from([0xd0, 0x00]);
export const DISCONNECT = Buffer.from([0xe0, 0x00]);

export function subackPacket(packetId: number, grantedQos: number): Buffer {
  return Buffer.from([0x90, 0x03, packetId >>> 8, packetId & 0xff, grantedQos]);
}

/** Writes a PUBACK for `packetId` at `off` (4 bytes). */
export function writePuback(buf: Buffer, off: number, packetId: number): number {
  buf[off] = 0x40;
  buf[off + 1] = 0x02;
  buf[off + 2] = packetId >>> 8;
  buf[off + 3] = packetId & 0xff;
  return off + 4;
}

/** Packet id of a PUBLISH body (QoS > 0 only): it follows the topic. */
export function publishPacketId(buf: Buffer, bodyStart: number): number {
  const topicLen = (buf[bodyStart]! << 8) | buf[bodyStart + 1]!;
  const at = bodyStart + 2 + topicLen;
  return (buf[at]! << 8) | buf[at + 1]!;
}

/**
 * Streaming MQTT frame parser: calls `onPacket(type, flags, buf, bodyStart, bodyEnd)` for every
 * complete packet; `buf` is only valid during the call.
 */
export class FrameParser {
  private pending: Buffer | null = null;

  constructor(private readonly onPacket: (type: number, flags: number, buf: Buffer, bodyStart: number, bodyEnd: number) => void) {}

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.pending !== null) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    const n = buf.length;
    let off = 0;
    while (off + 2 <= n) {
      const b0 = buf[off]!;
      let i = off + 1;
      let len = 0;
      let mult = 1;
      let complete = false;
      for (let k = 0; k < 4 && i < n; k++) {
        const b = buf[i++]!;
        len += (b & 0x7f) * mult;
        mult *= 0x80;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (i - off > 4) throw new Error('malformed MQTT remaining length');
        break;
      }
      if (i + len > n) break;
      this.onPacket(b0 >>> 4, b0 & 0x0f, buf, i, i + len);
      off = i + len;
    }
    if (off < n) this.pending = Buffer.from(buf.subarray(off));
  }
}

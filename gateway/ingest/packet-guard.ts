import type { Duplex } from 'node:stream';

/**
 * Why a connection was closed by the packet guard; the `reason` label of
 * pulsegate_mqtt_connections_refused_total.
 */
export const CONNECTION_REFUSAL_REASONS = [
  /** The first packet declared a remaining length above mqtt.maxConnectBytes. */
  'connect_too_large',
  /** A packet declared a remaining length above mqtt.maxPacketBytes. */
  'packet_too_large',
  /** A packet did not arrive whole within mqtt.packetTimeoutMs of its first byte. */
  'packet_timeout',
  /** The first packet was not a CONNECT [MQTT-3.1.0-1]. */
  'not_connect_first',
  /** CONNECT with a protocol level the broker does not speak: answered CONNACK 0x01 [MQTT-3.1.2-2]. */
  'protocol_version',
  /** A QoS 1 or 2 PUBLISH, a SUBSCRIBE or an UNSUBSCRIBE with packet identifier 0 [MQTT-2.3.1-1]. */
  'packet_id_zero',
  /** A remaining length longer than four bytes [MQTT-2.2.3]. */
  'malformed_length',
  /** Nothing at all arrived within mqtt.packetTimeoutMs of the connection being accepted. */
  'connect_timeout',
  /** The client read nothing of what it was sent (PUBACKs, deliveries) for mqtt.packetTimeoutMs. */
  'not_reading',
  /** A PUBLISH topic or SUBSCRIBE filter not well-formed UTF-8, or holding U+0000 [MQTT-1.5.3-1, -2] (found by the broker hooks). */
  'bad_utf8',
] as const;
export type ConnectionRefusalReason = (typeof CONNECTION_REFUSAL_REASONS)[number];

export interface PacketGuardOptions {
  /** Largest remaining length of the first packet (the CONNECT, read before authentication). */
  readonly maxConnectBytes: number;
  /** Largest remaining length of any later packet. */
  readonly maxPacketBytes: number;
  /** Longest a packet may take to arrive once its first byte was read; also the longest wait for a first byte. */
  readonly packetTimeoutMs: number;
  /** Called once per refused connection, before it is closed. */
  readonly onRefused: (reason: ConnectionRefusalReason, detail: string) => void;
}

/** [MQTT-2.2.3] The remaining length is at most four bytes: 268,435,455. */
export const MAX_REMAINING_LENGTH = 268_435_455;

/** CONNACK, remaining length 2, no session, return code 0x01 "unacceptable protocol version" [MQTT-3.2.2.3]. */
const CONNACK_UNACCEPTABLE_PROTOCOL = Buffer.from([0x20, 0x02, 0x00, 0x01]);

const CONNECT = 1;
const PUBLISH = 3;
const SUBSCRIBE = 8;
const UNSUBSCRIBE = 10;
const PROTOCOL_MQTT = [0x4d, 0x51, 0x54, 0x54]; // "MQTT", level 4 (3.1.1)
const PROTOCOL_MQISDP = [0x4d, 0x51, 0x49, 0x73, 0x64, 0x70]; // "MQIsdp", level 3 (3.1)

// Scanner states: reading the type byte, the remaining length, or the body.
const HEADER = 0;
const LENGTH = 1;
const BODY = 2;

// Which bytes of the current packet's body the scanner still looks at.
const INSPECT_NONE = 0;
const CONNECT_NAME_LENGTH = 1;
const CONNECT_NAME = 2;
const CONNECT_LEVEL = 3;
const PUBLISH_TOPIC_LENGTH = 4;
const PACKET_ID_HIGH = 5;
const PACKET_ID_LOW = 6;

/**
 * Follows the MQTT fixed headers [MQTT-2.2] along a connection's byte stream without copying or
 * buffering anything: per packet it reads the type byte and the remaining length, skips the body,
 * and looks at a few bytes of some bodies (the CONNECT's protocol name and level; the packet
 * identifier of a QoS > 0 PUBLISH, a SUBSCRIBE or an UNSUBSCRIBE). A verdict is reached from the fixed header alone, before the
 * body arrives, so a packet declaring 200 MiB is refused after at most one socket read.
 */
export class PacketScanner {
  /** Set once the stream broke a rule; the scanner then stays stopped. */
  refusal: { reason: ConnectionRefusalReason; detail: string } | null = null;
  /** Packets whose first byte has been seen (a new value means a new packet is under way). */
  packetsStarted = 0;

  private state: number = HEADER;
  private type = 0;
  private flags = 0;
  private length = 0;
  private lengthShift = 0;
  private bodyPos = 0;
  private bodyRemaining = 0;
  private inspect: number = INSPECT_NONE;
  /** Body offset of the next byte to inspect (meaningful while inspect !== None). */
  private wantAt = 0;
  private field = 0;
  private protocol: readonly number[] = PROTOCOL_MQTT;

  constructor(
    private readonly maxConnectBytes: number,
    private readonly maxPacketBytes: number,
  ) {}

  /** True while a packet has begun and not yet fully arrived. */
  get midPacket(): boolean {
    return this.state !== HEADER;
  }

  /**
   * Scans the next chunk of the stream. Returns -1 when every packet in it is acceptable so far;
   * otherwise sets `refusal` and returns the offset in `chunk` where the refused packet begins
   * (0 when it began in an earlier chunk): the bytes before it are whole, acceptable packets.
   */
  scan(chunk: Uint8Array): number {
    if (this.refusal !== null) return 0;
    const end = chunk.length;
    let start = 0;
    let i = 0;
    while (i < end) {
      if (this.state === HEADER) {
        // Fast path: a whole, plainly acceptable packet with a 1- or 2-byte remaining length
        // inside this chunk is stepped over in one go; anything else takes the full path below.
        if (this.packetsStarted !== 0 && i + 2 < end) {
          const b0 = chunk[i]!;
          const b1 = chunk[i + 1]!;
          let len = -1;
          let next = 0;
          if (b1 < 0x80) {
            len = b1;
            next = i + 2 + len;
          } else if (chunk[i + 2]! < 0x80) {
            len = (b1 & 0x7f) | (chunk[i + 2]! << 7);
            next = i + 3 + len;
          }
          if (len >= 0 && next <= end && len <= this.maxPacketBytes) {
            let plain = true;
            const t = b0 >> 4;
            if (t === PUBLISH && (b0 & 0x06) !== 0) {
              const body = next - len;
              const at = len >= 2 ? body + 2 + ((chunk[body]! << 8) | chunk[body + 1]!) : next;
              plain = at + 2 <= next && (chunk[at]! | chunk[at + 1]!) !== 0;
            } else if (t === SUBSCRIBE || t === UNSUBSCRIBE) {
              const body = next - len;
              plain = len >= 2 && (chunk[body]! | chunk[body + 1]!) !== 0;
            }
            if (plain) {
              this.packetsStarted++;
              i = next;
              continue;
            }
          }
        }
        start = i;
        const byte = chunk[i++]!;
        this.packetsStarted++;
        this.type = byte >> 4;
        this.flags = byte & 0x0f;
        if (this.packetsStarted === 1 && this.type !== CONNECT) return this.refuse(start, 'not_connect_first', `first packet has type ${this.type}, not CONNECT`);
        this.length = 0;
        this.lengthShift = 0;
        this.state = LENGTH;
      } else if (this.state === LENGTH) {
        const byte = chunk[i++]!;
        this.length += (byte & 0x7f) * 2 ** this.lengthShift;
        this.lengthShift += 7;
        if (byte & 0x80) {
          if (this.lengthShift === 28) return this.refuse(start, 'malformed_length', 'remaining length longer than four bytes');
          continue;
        }
        const first = this.packetsStarted === 1;
        const limit = first ? this.maxConnectBytes : this.maxPacketBytes;
        if (this.length > limit) {
          return first
            ? this.refuse(start, 'connect_too_large', `CONNECT declares ${this.length} bytes > mqtt.maxConnectBytes ${limit}`)
            : this.refuse(start, 'packet_too_large', `packet of type ${this.type} declares ${this.length} bytes > mqtt.maxPacketBytes ${limit}`);
        }
        this.bodyPos = 0;
        this.bodyRemaining = this.length;
        if (first) {
          this.inspect = CONNECT_NAME_LENGTH;
          this.wantAt = 0;
        } else if (this.type === PUBLISH && (this.flags & 0x06) !== 0) {
          this.inspect = PUBLISH_TOPIC_LENGTH;
          this.wantAt = 0;
        } else if (this.type === SUBSCRIBE || this.type === UNSUBSCRIBE) {
          this.inspect = PACKET_ID_HIGH;
          this.wantAt = 0;
        } else this.inspect = INSPECT_NONE;
        this.state = this.length === 0 ? HEADER : BODY;
      } else {
        const avail = Math.min(end - i, this.bodyRemaining);
        const reach = this.bodyPos + avail;
        while (this.inspect !== INSPECT_NONE && this.wantAt < reach) {
          this.inspectByte(chunk[i + this.wantAt - this.bodyPos]!);
          if (this.refusal !== null) return start;
        }
        i += avail;
        this.bodyPos = reach;
        this.bodyRemaining -= avail;
        if (this.bodyRemaining === 0) this.state = HEADER;
      }
    }
    return -1;
  }

  private inspectByte(byte: number): void {
    switch (this.inspect) {
      case CONNECT_NAME_LENGTH:
        if (this.wantAt === 0) {
          this.field = byte << 8;
          this.wantAt = 1;
          return;
        }
        this.field |= byte;
        // Any other protocol name is left to the packet parser, which refuses it [MQTT-3.1.2-1].
        if (this.field === PROTOCOL_MQTT.length) this.protocol = PROTOCOL_MQTT;
        else if (this.field === PROTOCOL_MQISDP.length) this.protocol = PROTOCOL_MQISDP;
        else return this.stopInspecting();
        this.inspect = CONNECT_NAME;
        this.wantAt = 2;
        return;
      case CONNECT_NAME:
        if (byte !== this.protocol[this.wantAt - 2]) return this.stopInspecting();
        this.wantAt++;
        if (this.wantAt === 2 + this.protocol.length) this.inspect = CONNECT_LEVEL;
        return;
      case CONNECT_LEVEL: {
        // The high bit marks a bridge (mosquitto's try_private), accepted by the packet parser.
        const level = byte & 0x7f;
        const supported = this.protocol === PROTOCOL_MQTT ? 4 : 3;
        this.stopInspecting();
        if (level !== supported) this.refusal = { reason: 'protocol_version', detail: `CONNECT with protocol level ${level}; this broker speaks MQTT 3.1.1 (level 4) and 3.1 (MQIsdp, level 3)` };
        return;
      }
      case PUBLISH_TOPIC_LENGTH:
        if (this.wantAt === 0) {
          this.field = byte << 8;
          this.wantAt = 1;
          return;
        }
        this.field |= byte;
        this.inspect = PACKET_ID_HIGH;
        this.wantAt = 2 + this.field;
        return;
      case PACKET_ID_HIGH:
        this.field = byte << 8;
        this.inspect = PACKET_ID_LOW;
        this.wantAt++;
        return;
      case PACKET_ID_LOW:
        this.stopInspecting();
        if ((this.field | byte) === 0) {
          const what = this.type === PUBLISH ? `QoS ${(this.flags >> 1) & 3} PUBLISH` : this.type === SUBSCRIBE ? 'SUBSCRIBE' : 'UNSUBSCRIBE';
          this.refusal = { reason: 'packet_id_zero', detail: `${what} with packet identifier 0` };
        }
        return;
      default:
        return this.stopInspecting();
    }
  }

  private stopInspecting(): void {
    this.inspect = INSPECT_NONE;
  }

  private refuse(start: number, reason: ConnectionRefusalReason, detail: string): number {
    this.refusal = { reason, detail };
    return start;
  }
}

/**
 * Puts a PacketScanner on a connection before the broker reads it, and returns the connection.
 *
 * aedes reads a connection with `conn.read(null)` on 'readable' and hands each chunk to its
 * packet parser, which buffers a packet until its declared length has arrived. The guard wraps
 * that `read` on this one connection: every chunk aedes takes is scanned in place (no copy, no
 * extra stream) before the parser sees it. A chunk that breaks a rule is cut at the offending
 * packet, so whole packets before it are still handled, nothing of the offending one reaches the
 * parser, and the connection is closed. Unread bytes stay within the stream's high-water mark
 * (TCP backpressure holds the rest), so a refused packet costs at most one chunk of memory.
 *
 * The packet timer measures from the first byte of a packet the broker has read (from the accept
 * for the first one); it does not fire while bytes are waiting unread in the stream (the broker,
 * not the client, is slow then). aedes' own connectTimeout (30 s) stays as a backstop.
 *
 * `scanner`: given by a caller that also asks it where the stream stands (`midPacket`).
 */
export function guardConnection<T extends Duplex>(
  conn: T,
  options: PacketGuardOptions,
  scanner = new PacketScanner(options.maxConnectBytes, options.maxPacketBytes),
): T {
  const read = conn.read;
  let timedPacket = 0;
  // Until the first byte, the clock runs from the accept: a silent connection is closed too.
  let packetStartedAt = performance.now();
  let timer: NodeJS.Timeout | null = setTimeout(() => onTimer(), options.packetTimeoutMs);

  const refuse = (): void => {
    const { reason, detail } = scanner.refusal!;
    if (timer !== null) clearTimeout(timer);
    timer = null;
    options.onRefused(reason, detail);
    if (reason === 'protocol_version') {
      // [MQTT-3.1.2-2]: answer CONNACK 0x01, then disconnect.
      conn.end(CONNACK_UNACCEPTABLE_PROTOCOL, () => conn.destroy());
    } else conn.destroy();
  };

  const onTimer = (): void => {
    timer = null;
    const silent = scanner.packetsStarted === 0;
    if (scanner.refusal !== null || conn.destroyed || !(silent || scanner.midPacket)) return;
    const age = performance.now() - packetStartedAt;
    if (age < options.packetTimeoutMs || conn.readableLength > 0) {
      timer = setTimeout(onTimer, age < options.packetTimeoutMs ? options.packetTimeoutMs - age : options.packetTimeoutMs);
      return;
    }
    scanner.refusal = silent
      ? { reason: 'connect_timeout', detail: `nothing arrived within mqtt.packetTimeoutMs ${options.packetTimeoutMs} ms of the connection` }
      : { reason: 'packet_timeout', detail: `a packet took more than mqtt.packetTimeoutMs ${options.packetTimeoutMs} ms to arrive` };
    refuse();
  };

  // A client that does not read what it is sent (PUBACKs, deliveries) is not read either until the
  // stream drains: its TCP window fills, instead of the broker's answers piling up in memory; if
  // it stays so for mqtt.packetTimeoutMs (whatever its keepalive), it is closed. The broker reads
  // only when idle, so telling it the stream is readable again after 'drain' is safe. (The
  // stream's own read(0) calls, which may come while the broker is busy, pass straight through.)
  let drainWait = false;
  let drainTimer: NodeJS.Timeout | null = null;
  const onDrain = (): void => {
    drainWait = false;
    if (drainTimer !== null) clearTimeout(drainTimer);
    drainTimer = null;
    if (!conn.destroyed) conn.emit('readable');
  };
  const onNotReading = (): void => {
    drainTimer = null;
    if (scanner.refusal !== null || conn.destroyed || !conn.writableNeedDrain) return;
    scanner.refusal = { reason: 'not_reading', detail: `the client read nothing it was sent for mqtt.packetTimeoutMs ${options.packetTimeoutMs} ms` };
    refuse();
  };

  conn.read = function guardedRead(this: T, size?: number): unknown {
    if (size !== 0 && conn.writableNeedDrain) {
      if (!drainWait) {
        drainWait = true;
        conn.once('drain', onDrain);
        drainTimer = setTimeout(onNotReading, options.packetTimeoutMs);
      }
      return null;
    }
    const chunk: unknown = read.call(this, size);
    if (chunk === null) return chunk;
    if (scanner.refusal !== null) return null;
    // Only a stream given an encoding yields text (aedes never sets one); its parser would take the
    // UTF-8 bytes, so those are what is scanned.
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    const cut = scanner.scan(bytes);
    if (cut >= 0) {
      refuse();
      return cut === 0 ? null : bytes.subarray(0, cut);
    }
    if (scanner.midPacket && scanner.packetsStarted !== timedPacket) {
      timedPacket = scanner.packetsStarted;
      packetStartedAt = performance.now();
      if (timer === null) timer = setTimeout(onTimer, options.packetTimeoutMs);
    }
    return chunk;
  } as T['read'];
  conn.once('close', () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (drainTimer !== null) clearTimeout(drainTimer);
    drainTimer = null;
  });
  return conn;
}

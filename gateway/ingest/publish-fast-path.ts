import type { Duplex } from 'node:stream';
import { topicHash } from './topic.js';

/**
 * Sensor PUBLISH packets taken off a connection before aedes parses them.
 *
 * For a sensor reading nobody subscribed to, aedes' work per publish is parsing it into a packet
 * object (mqtt-packet over a `bl` buffer list, which copies the payload), queueing and handling
 * it (runSeries and its closures), then asking the route gate. That is over half of what the main
 * thread allocates per reading and a large share of its time. This reads such a PUBLISH in place
 * from the chunk the stream hands over, gives its topic and payload (a view of the chunk, no copy)
 * to ingest, and writes its PUBACK when ingest answers; every other packet still goes to aedes.
 *
 * What aedes guarantees is kept:
 * - **Order.** Packets are taken only from the front of a chunk, while aedes' parser holds no part
 *   of a packet and aedes is idle (it asks for the next chunk only then); from the first packet
 *   not taken, the rest of the chunk goes to aedes. A taken PUBLISH cut by the chunk's end is held
 *   here (copied once) and completed by the next chunks. PUBACKs go out in the order of their
 *   PUBLISHes [MQTT-4.6.0-2], however their answers arrive (a refusal is answered at once, a
 *   reading once durable); packets after them in the same read are handed to aedes only once all
 *   of them are answered, so aedes' answers come after theirs.
 * - **Backpressure.** Like aedes, the next chunk is read only once every publish taken from the
 *   last one has been answered: a read while some are waiting returns nothing, and the stream is
 *   told it is readable again when the last one is answered. A client that does not read what it
 *   is sent (its PUBACKs pile up unsent) is not read until the stream drains (the packet guard).
 * - **Keepalive.** A taken packet refreshes the client's keepalive timer, as aedes' handler does.
 * - **Errors.** An answer with an error closes the connection (with that error, which aedes
 *   reports as a client error) without a PUBACK, as aedes does.
 *
 * It relies on aedes 1.2's client internals: `conn.client` (set by the Client constructor),
 * `connackSent`, `closed`, `_keepaliveInterval` and `_keepaliveTimer`; reading is driven by
 * aedes' `conn.read(null)` on 'readable'.
 */

/** What the fast path needs of an aedes client. */
interface AedesClientInternals {
  readonly connackSent?: boolean;
  readonly closed?: boolean;
  readonly _keepaliveInterval?: number;
  readonly _keepaliveTimer?: { refresh(): void } | null;
}

export interface FastPublishTarget {
  /**
   * Handles one QoS 0 or 1 PUBLISH (not retained) of a connected client, or returns false to
   * leave it, and every packet after it in this read, to the broker. `done` answers it: null
   * acknowledges (a PUBACK for QoS 1), an error closes the connection.
   */
  take(client: unknown, topic: string, payload: Buffer, qos: 0 | 1, messageId: number, done: (err?: Error | null) => void): boolean;
}

const PUBLISH = 3;
const PUBACK_HEADER = 0x40;
/** Largest PUBLISH (whole, header included) held here across chunks. */
const HOLD_MAX_BYTES = 64 * 1024;

/**
 * Wraps `conn.read` (after the packet guard, so it sees only chunks the guard let through).
 * `midPacket()` tells whether the stream, as read so far, ends inside a packet (the guard's
 * scanner knows).
 */
export function takeFastPublishes(conn: Duplex, target: FastPublishTarget, midPacket: () => boolean): void {
  const read = conn.read;
  /** Publishes taken and not yet answered. */
  let pending = 0;
  /** aedes asked for a chunk while some were pending, and got none: tell it when they are answered. */
  let stalled = false;
  /** Whether aedes' parser holds part of a packet (what it was given did not end at a boundary). */
  let parserMidPacket = false;
  /**
   * A taken PUBLISH the last chunk cut short, completed by the next ones: allocated whole once its
   * length is known (`heldTotal`), else the few bytes of its fixed header so far (`heldTotal` -1).
   */
  let held: Buffer | null = null;
  let heldLength = 0;
  let heldTotal = -1;
  /** The rest of a read for the broker, kept back until the publishes taken before it are answered. */
  let deferred: Buffer | null = null;

  /** An answer was an error: the connection is closed, nothing more is taken from it. */
  let broken = false;
  /** Tells aedes (idle: its last read got nothing) to read again. */
  const resume = (): void => {
    if (!conn.destroyed) conn.emit('readable');
  };
  const settle = (err: Error | null | undefined): void => {
    pending--;
    if (err && !broken) {
      broken = true;
      conn.destroy(err);
    }
    if (pending === 0 && stalled) {
      stalled = false;
      resume();
    }
  };
  // QoS 0 has nothing to send: one answer for all of them.
  const answeredQos0 = (err?: Error | null): void => settle(err);

  // QoS 1: PUBACKs leave in the order of their PUBLISHes [MQTT-4.6.0-2] even when a later one is
  // answered first (a refusal answered at once behind a reading waiting for its fsync): slot k of
  // the queue is the k-th QoS 1 publish taken since the queue last emptied.
  const ackIds: number[] = [];
  const ackReady: boolean[] = [];
  let ackHead = 0;
  // The PUBACKs written in one tick (a group commit answers many) leave in one write: the stream
  // is corked at the first and uncorked on the next tick, as mqtt-packet does for aedes.
  let corked = false;
  const uncork = (): void => {
    corked = false;
    conn.uncork();
  };
  const writeReadyAcks = (): void => {
    while (ackHead < ackIds.length && ackReady[ackHead]) {
      const id = ackIds[ackHead++]!;
      if (conn.destroyed) continue;
      if (!corked) {
        corked = true;
        conn.cork();
        process.nextTick(uncork);
      }
      conn.write(Buffer.from([PUBACK_HEADER, 2, id >> 8, id & 0xff]));
    }
    if (ackHead === ackIds.length) {
      ackIds.length = 0;
      ackReady.length = 0;
      ackHead = 0;
    }
  };
  const answeredQos1 = (messageId: number) => {
    const slot = ackIds.length;
    ackIds.push(messageId);
    ackReady.push(false);
    return (err?: Error | null): void => {
      if (!err) {
        ackReady[slot] = true;
        writeReadyAcks();
      }
      settle(err);
    };
  };

  const toBroker = (bytes: Buffer): Buffer => {
    parserMidPacket = midPacket();
    return bytes;
  };

  conn.read = function fastRead(this: Duplex, size?: number): unknown {
    // The stream's own read(0) calls (to start a read) are not the broker's: passed straight through.
    if (size === 0) return read.call(this, size);
    if (pending > 0) {
      stalled = true;
      return null;
    }
    if (deferred !== null) {
      // Nothing was read since it was kept back: the guard's scanner still stands at its end.
      const rest = deferred;
      deferred = null;
      return toBroker(rest);
    }
    for (;;) {
      const got: unknown = read.call(this, size);
      if (got === null || typeof got === 'string') {
        if (got !== null) parserMidPacket = midPacket();
        return got;
      }
      let chunk = got as Buffer;
      if (held !== null) {
        if (heldTotal < 0) {
          // Only part of its fixed header: parsed again with the new bytes.
          chunk = Buffer.concat([held.subarray(0, heldLength), chunk]);
        } else {
          const need = heldTotal - heldLength;
          if (chunk.length < need) {
            heldLength += chunk.copy(held, heldLength);
            continue;
          }
          chunk.copy(held, heldLength, 0, need);
          chunk = need === chunk.length ? held : Buffer.concat([held, chunk.subarray(need)]);
        }
        held = null;
      }
      const client = (conn as unknown as { client?: AedesClientInternals }).client;
      if (parserMidPacket || client === undefined || client.connackSent !== true || client.closed === true) return toBroker(chunk);
      const end = chunk.length;
      let pos = 0;
      let took = false;
      // Whole packets before one the guard refused are still handled (it has closed the
      // connection by now), as the broker's parser would; after an answer with an error, none.
      while (pos < end && !broken) {
        const b0 = chunk[pos]!;
        const qos = (b0 >> 1) & 3;
        // Only QoS 0/1 PUBLISHes that are not retained; anything else (and all after it) is the broker's.
        if (b0 >> 4 !== PUBLISH || qos > 1 || (b0 & 1) !== 0) break;
        // Remaining length: up to four bytes (the guard refused longer ones).
        let len = 0;
        let mul = 1;
        let i = pos + 1;
        let complete = false;
        while (i < end && i < pos + 5) {
          const b = chunk[i++]!;
          len += (b & 0x7f) * mul;
          mul *= 128;
          if (b < 0x80) {
            complete = true;
            break;
          }
        }
        const next = i + len;
        if (!complete || next > end) {
          // Cut short by the chunk's end: kept here, so aedes' parser stays empty; a large one is
          // the broker's (its parser collects it without copying it again for every chunk).
          if (complete && next - pos > HOLD_MAX_BYTES) break;
          heldTotal = complete ? next - pos : -1;
          held = Buffer.allocUnsafe(complete ? heldTotal : 5);
          heldLength = chunk.copy(held, 0, pos, end);
          pos = end;
          break;
        }
        if (len < 2) break;
        const topicLength = (chunk[i]! << 8) | chunk[i + 1]!;
        const topicEnd = i + 2 + topicLength;
        const payloadStart = topicEnd + (qos > 0 ? 2 : 0);
        if (payloadStart > next) break; // malformed: the broker's parser refuses it
        const messageId = qos > 0 ? (chunk[topicEnd]! << 8) | chunk[topicEnd + 1]! : 0;
        const topic = topicAt(chunk, i + 2, topicEnd);
        pending++;
        if (!target.take(client, topic, chunk.subarray(payloadStart, next), qos as 0 | 1, messageId, qos === 0 ? answeredQos0 : answeredQos1(messageId))) {
          // Not taken (nothing was done with it): its PUBACK slot goes too.
          pending--;
          if (qos === 1) {
            ackIds.pop();
            ackReady.pop();
          }
          break;
        }
        took = true;
        pos = next;
      }
      if (took && (client._keepaliveInterval ?? 0) > 0) client._keepaliveTimer?.refresh();
      if (broken) return null;
      if (pos < end) {
        const rest = pos === 0 ? chunk : chunk.subarray(pos);
        if (pending === 0) return toBroker(rest);
        // The broker's packets wait for the taken publishes' answers, so that its PUBACKs come
        // after theirs.
        deferred = rest;
        stalled = true;
        return null;
      }
      if (pending > 0) {
        stalled = true;
        return null;
      }
    }
  } as Duplex['read'];
}

/**
 * Topics decoded before, by their bytes: a device publishes on the same topic every time, and
 * handing ingest the same string object again spares the UTF-8 decode and lets the topic's route
 * memo find it by its cached hash. A direct-mapped table (a colliding topic replaces the older);
 * topics over MAX_INTERNED_TOPIC_BYTES are decoded each time. Its bytes live in one slab (copies of
 * a few bytes each would each pin a block of Buffer's shared pool).
 */
const TOPIC_SLOTS = 16_384;
const MAX_INTERNED_TOPIC_BYTES = 128;
/** Slot k's bytes at k * MAX_INTERNED_TOPIC_BYTES, its length in topicLengths (-1: empty). One allocation of 2 MiB. */
const topicSlab = Buffer.allocUnsafeSlow(TOPIC_SLOTS * MAX_INTERNED_TOPIC_BYTES);
const topicLengths = new Int32Array(TOPIC_SLOTS).fill(-1);
const topicStrings: string[] = new Array<string>(TOPIC_SLOTS);

/** The topic in `buf[start, end)` as a string (ill-formed UTF-8 decoded to U+FFFD, as the broker's parser does). */
export function topicAt(buf: Buffer, start: number, end: number): string {
  const n = end - start;
  if (n > MAX_INTERNED_TOPIC_BYTES) return buf.toString('utf8', start, end);
  const slot = topicHash(buf, start, end) & (TOPIC_SLOTS - 1);
  const at = slot * MAX_INTERNED_TOPIC_BYTES;
  if (topicLengths[slot] === n) {
    let i = n - 1;
    while (i >= 0 && topicSlab[at + i] === buf[start + i]) i--;
    if (i < 0) return topicStrings[slot]!;
  }
  const topic = buf.toString('utf8', start, end);
  buf.copy(topicSlab, at, start, end);
  topicLengths[slot] = n;
  topicStrings[slot] = topic;
  return topic;
}

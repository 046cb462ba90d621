import type { StatefulStage } from '../checkpoint/stateful-stage.js';
import { GatewayError } from '../errors.js';

/**
 * Dedup by (device, seq) and sequence-gap accounting, in bounded memory.
 *
 * Per device: the highest seq seen and a ring bitmap of the last `window` seqs (the anti-replay
 * window of RFC 4303 section 3.4.3). A seq inside the window is a duplicate when its bit is set;
 * a jump forward counts the skipped seqs as a gap (loss in transit) at once, and a skipped seq
 * that arrives later, still inside the window, counts as a gap fill (so net loss = gaps - fills).
 * A device restart (its counter reset) is recognised two ways: seq 1 arriving after a higher seq
 * (a rebooted device starts over at 1), or a seq more than `window` below the highest. The
 * device's state then starts over and the restart is counted. The price: a resend of a device's
 * very first reading after it has moved on counts once more.
 * At most `maxDevices` devices are tracked; the least recently seen is evicted (policy
 * "evict-lru", counted), after which its next reading starts a fresh state.
 */
export type SeqVerdict = 'new' | 'duplicate';

export interface SequenceStats {
  gaps: number;
  gapFills: number;
  resets: number;
  evictions: number;
}

interface DeviceSeq {
  high: number;
  bits: Uint32Array;
  /** Value of the tracker's observation counter when the device was last moved to the back. */
  touched: number;
}

export interface SequenceTrackerSnapshot {
  readonly window: number;
  readonly devices: readonly (readonly [string, number, string])[];
}

export class SequenceTracker implements StatefulStage {
  readonly name = 'sequence-tracker';
  private readonly devices = new Map<string, DeviceSeq>();
  private readonly words: number;
  private observations = 0;
  private readonly refreshEvery: number;
  readonly stats: SequenceStats = { gaps: 0, gapFills: 0, resets: 0, evictions: 0 };

  constructor(
    private readonly window: number,
    private readonly maxDevices: number,
  ) {
    if (window % 32 !== 0) throw new Error('seqWindow must be a multiple of 32');
    this.words = window / 32;
    this.refreshEvery = Math.max(1, Math.floor(maxDevices / 2));
  }

  get size(): number {
    return this.devices.size;
  }

  observe(key: string, seq: number): SeqVerdict {
    const now = ++this.observations;
    let d = this.devices.get(key);
    if (d === undefined) {
      d = { high: seq, bits: new Uint32Array(this.words), touched: now };
      this.setBit(d, seq);
      this.devices.set(key, d);
      if (this.devices.size > this.maxDevices) this.evictOldest();
      return 'new';
    }
    // The Map's insertion order is the LRU order (front = least recently seen). Moving a device
    // to the back on every reading costs a delete and an insert; doing it once per maxDevices/2
    // observations is enough: fewer than maxDevices insertions can have happened behind a device
    // seen since, so a device is never evicted within maxDevices/2 observations of its last reading.
    if (now - d.touched >= this.refreshEvery) {
      d.touched = now;
      this.devices.delete(key);
      this.devices.set(key, d);
    }

    if (seq > d.high) {
      const jump = seq - d.high;
      if (jump >= this.window) d.bits.fill(0);
      else for (let s = d.high + 1; s < seq; s++) this.clearBit(d, s);
      this.stats.gaps += jump - 1;
      d.high = seq;
      this.setBit(d, seq);
      return 'new';
    }
    if (d.high - seq >= this.window || (seq === 1 && d.high > 1)) {
      // The device restarted its counter.
      this.stats.resets++;
      d.high = seq;
      d.bits.fill(0);
      this.setBit(d, seq);
      return 'new';
    }
    if (this.testBit(d, seq)) return 'duplicate';
    this.setBit(d, seq);
    this.stats.gapFills++;
    return 'new';
  }

  snapshot(): SequenceTrackerSnapshot {
    const devices: (readonly [string, number, string])[] = [];
    for (const [key, d] of this.devices) devices.push([key, d.high, Buffer.from(d.bits.buffer, d.bits.byteOffset, d.bits.byteLength).toString('base64')]);
    return { window: this.window, devices };
  }

  restore(state: unknown): void {
    const snap = state as SequenceTrackerSnapshot;
    if (typeof snap !== 'object' || snap === null || !Array.isArray(snap.devices)) throw new GatewayError('GW_ERR_CHECKPOINT', 'sequence tracker: not a tracker snapshot');
    this.devices.clear();
    if (snap.window !== this.window) return; // a different window size cannot reuse the bitmaps
    // The snapshot lists devices least recently seen first; a smaller maxDevices than the one it
    // was taken with keeps the most recent ones (the same "evict-lru" as observe()).
    const from = Math.max(0, snap.devices.length - this.maxDevices);
    this.stats.evictions += from;
    for (const [key, high, bits] of snap.devices.slice(from)) {
      const buf = Buffer.from(bits, 'base64');
      const words = new Uint32Array(this.words);
      // Copy bytewise: a decoded Buffer may sit at an offset not aligned for a Uint32Array view.
      new Uint8Array(words.buffer).set(buf.subarray(0, this.words * 4));
      this.devices.set(key, { high, bits: words, touched: this.observations });
    }
  }

  private evictOldest(): void {
    const oldest = this.devices.keys().next();
    if (!oldest.done) {
      this.devices.delete(oldest.value);
      this.stats.evictions++;
    }
  }

  private setBit(d: DeviceSeq, seq: number): void {
    const i = seq % this.window;
    d.bits[i >>> 5]! |= 1 << (i & 31);
  }
  private clearBit(d: DeviceSeq, seq: number): void {
    const i = seq % this.window;
    d.bits[i >>> 5]! &= ~(1 << (i & 31));
  }
  private testBit(d: DeviceSeq, seq: number): boolean {
    const i = seq % this.window;
    return (d.bits[i >>> 5]! & (1 << (i & 31))) !== 0;
  }
}

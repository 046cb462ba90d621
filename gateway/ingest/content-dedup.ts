/**
 * Dedup by content for devices that send no sequence number (ingest.sources with seqPath null):
 * a publish whose bytes equal one of the same device within the source's horizon (by arrival
 * time) is a duplicate. It catches resends (QoS 1 redelivery, a device publishing twice); it
 * also drops a genuine reading identical to the previous one within the horizon, which is why
 * the horizon is short. Per device the last RECENT_PER_DEVICE digests are kept; at most
 * `maxDevices` devices, the least recently seen forgotten first (policy "evict-lru", counted).
 * The state is in memory only: after a restart, a resend of a publish from before is new.
 */
const RECENT_PER_DEVICE = 8;

interface Recent {
  digests: number[];
  at: number[];
}

/**
 * 53 bits of two FNV-1a lanes over the bytes (with different offsets), plus nothing else: a
 * cryptographic hash object costs ~10 µs a publish in Node, this ~0.3 µs for a typical payload.
 * A device could craft two payloads with one digest; it would only lose a reading of its own.
 */
export function contentDigest(payload: Buffer): number {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ payload.length;
  for (let i = 0; i < payload.length; i++) {
    const x = payload[i]!;
    a = Math.imul(a ^ x, 0x01000193);
    b = Math.imul(b ^ x, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return (a >>> 0) * 0x200000 + ((b >>> 0) & 0x1fffff);
}

export class ContentDedup {
  private readonly devices = new Map<string, Recent>();
  constructor(
    private readonly maxDevices: number,
    private readonly onEvict: () => void = () => {},
  ) {}

  get size(): number {
    return this.devices.size;
  }

  /** True when `payload` repeats a publish of `key` within `horizonMs` of `now`; otherwise remembers it. */
  isDuplicate(key: string, payload: Buffer, now: number, horizonMs: number): boolean {
    if (horizonMs <= 0) return false;
    const digest = contentDigest(payload);
    let d = this.devices.get(key);
    if (d === undefined) {
      d = { digests: [], at: [] };
      if (this.devices.size >= this.maxDevices) {
        const oldest = this.devices.keys().next();
        if (!oldest.done) {
          this.devices.delete(oldest.value);
          this.onEvict();
        }
      }
    } else this.devices.delete(key); // re-inserted below: the Map's order is the LRU order
    this.devices.set(key, d);
    for (let i = 0; i < d.digests.length; i++) {
      if (d.digests[i] === digest && now - d.at[i]! < horizonMs) return true;
    }
    d.digests.push(digest);
    d.at.push(now);
    if (d.digests.length > RECENT_PER_DEVICE) {
      d.digests.shift();
      d.at.shift();
    }
    return false;
  }
}

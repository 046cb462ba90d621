/**
 * Dedup by content for devices that send no sequence number (ingest.sources with seqPath null):
 * a publish whose bytes equal one of the same device within the source's horizon (by arrival
 * time) is a duplicate. It catches resends (QoS 1 redelivery, a device publishing twice); it
 * also drops a genuine reading identical to the previous one within the horizon, which is why
 * the horizon is short. Per device the last RECENT_PER_DEVICE digests are kept; at most
 * `maxDevices` devices, the least recently seen forgotten first (policy "evict-lru", counted).
 * The state is in memory only: after a restart, a resend of a publish from before is new.
 */
import { createHash } from 'node:crypto';

const RECENT_PER_DEVICE = 8;

interface Recent {
  digests: string[];
  at: number[];
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
    const digest = createHash('sha1').update(payload).digest('base64');
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

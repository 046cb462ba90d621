import { HEADER_BYTES, readTimestamp, readType, u32le } from './record-format.js';
import type { LogRecord, RecordType } from './types.js';

/**
 * The newest durable records of the log, kept in memory so that followers at (or near) the head
 * of the log read them from here instead of from disk. It holds copies of the bytes of durable
 * group commits (records in the segment format, already CRC-free of doubt: the log wrote them), one
 * entry per fdatasync'd chunk, oldest first; together they cover the offsets
 * [firstOffset, endOffset) without a hole. Bound: `maxBytes` of record bytes plus ENTRY_OVERHEAD_BYTES
 * per entry (plus the records a suspended reader still holds). Overflow
 * policy: evict the oldest entries; readers of evicted offsets fall back to the disk.
 */
export interface TailCache {
  /** First offset held; equals endOffset when empty. */
  readonly firstOffset: number;
  /** Offset after the newest one held. */
  readonly endOffset: number;
  readonly bytes: number;
  /** Adds the records [first, end) encoded in chunk[start, stop) (copied). Must start at endOffset, or the cache restarts there. */
  push(first: number, end: number, chunk: Buffer, start: number, stop: number): void;
  /**
   * The records [from, min(to, entry end)) of the entry holding `from`, those of the `wanted` types
   * only (all with null); null when `from` is not held. `next` is where the next read starts.
   */
  read(from: number, to: number, wanted: ReadonlySet<number> | null): { records: LogRecord[]; next: number } | null;
}

interface Entry {
  readonly first: number;
  readonly end: number;
  readonly bytes: Buffer;
}

/** What an entry costs beyond its bytes (object, ArrayBuffer): counted so that tiny groups stay bounded too. */
const ENTRY_OVERHEAD_BYTES = 160;

export function createTailCache(maxBytes: number): TailCache {
  // Slots before `head` are evicted and cleared (null), so their copies are freed at once.
  let entries: Array<Entry | null> = [];
  let head = 0;
  let bytes = 0;
  let endOffset = 0;

  function reset(): void {
    entries = [];
    head = 0;
    bytes = 0;
  }

  function firstOffset(): number {
    return head < entries.length ? entries[head]!.first : endOffset;
  }

  function evict(): void {
    while (head < entries.length && bytes > maxBytes) {
      bytes -= entries[head]!.bytes.length + ENTRY_OVERHEAD_BYTES;
      entries[head] = null;
      head++;
    }
    // Compacts the evicted prefix now and then, so the array does not only grow.
    if (head > 64 && head * 2 > entries.length) {
      entries = entries.slice(head);
      head = 0;
    }
  }

  function entryIndexFor(offset: number): number {
    let lo = head;
    let hi = entries.length - 1;
    if (lo > hi || offset < entries[lo]!.first || offset >= endOffset) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (entries[mid]!.first <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  return {
    get firstOffset() {
      return firstOffset();
    },
    get endOffset() {
      return endOffset;
    },
    get bytes() {
      return bytes;
    },
    push(first, end, chunk, start, stop) {
      if (end <= first) return;
      if (first !== endOffset) {
        // Not contiguous with what is held (cannot happen while the log appends in order): start over.
        reset();
      }
      endOffset = end;
      const size = stop - start;
      if (size + ENTRY_OVERHEAD_BYTES > maxBytes) {
        // Larger than the whole cache: not kept, and what is held no longer ends where the log does.
        reset();
        return;
      }
      const copy = Buffer.allocUnsafeSlow(size);
      chunk.copy(copy, 0, start, stop);
      entries.push({ first, end, bytes: copy });
      bytes += size + ENTRY_OVERHEAD_BYTES;
      evict();
    },
    read(from, to, wanted) {
      const i = entryIndexFor(from);
      if (i < 0) return null;
      const e = entries[i]!;
      const stopAt = Math.min(to, e.end);
      const buf = e.bytes;
      const records: LogRecord[] = [];
      let p = 0;
      let offset = e.first;
      while (offset < stopAt) {
        const size = HEADER_BYTES + u32le(buf, p + 4);
        if (offset >= from) {
          const type = readType(buf, p);
          if (wanted === null || wanted.has(type)) {
            records.push({ offset, type: type as RecordType, timestamp: readTimestamp(buf, p), payload: buf.subarray(p + HEADER_BYTES, p + size) });
          }
        }
        p += size;
        offset++;
      }
      return { records, next: stopAt };
    },
  };
}

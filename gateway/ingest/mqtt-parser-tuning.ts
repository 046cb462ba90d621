/**
 * Per-packet costs of aedes' MQTT parser (mqtt-packet over a `bl` buffer list) that are not the
 * parsing itself, removed without changing what it parses. Measured on small PUBLISH packets,
 * they were over half of what the parser allocates and about a fifth of its time.
 *
 * 1. Debug logging: mqtt-packet calls `debug(...)` a dozen times per packet; with its namespaces
 *    disabled each call still builds an argument array and asks the `debug` package whether they
 *    are enabled. Unless the DEBUG environment variable is set when the process starts, its
 *    loggers are no-ops; with DEBUG set (`DEBUG=mqtt-packet:* pulsegate start`) nothing changes.
 *    (Turning them on later with `debug.enable()` then has no effect on mqtt-packet.) This swaps
 *    the `debug` module's export, as mqtt-packet resolves it, for a factory that hands out a no-op
 *    for `mqtt-packet:` namespaces and the real logger for every other, so it must run before
 *    mqtt-packet is first loaded: mqtt-ingest.ts imports this module before aedes.
 * 2. Integer reads: `bl`'s readUInt8 / readUInt16BE / readUInt32BE slice a new Buffer for every
 *    read (about 100 bytes of garbage each; mqtt-packet reads the header, every length byte and
 *    the topic length that way). They are replaced by reads from the list's buffers in place; a
 *    read outside the list still goes to the original, which throws as before. Likewise
 *    `toString(encoding, start, end)` (the topic) decodes in place when the range lies in one of
 *    the list's buffers, instead of slicing a Buffer first.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

type DebugFactory = ((namespace: string) => unknown) & Record<string, unknown>;

interface BufferListLike {
  readonly length: number;
  readonly _bufs: readonly Buffer[];
}
type Reader = (this: BufferListLike, offset?: number) => number;
type ToString = (this: BufferListLike, encoding?: BufferEncoding, start?: number, end?: number) => string;

const require = createRequire(import.meta.url);

/** Where mqtt-packet's own dependency `name` resolves; null in a layout where it cannot be found. */
function resolveFromMqttPacket(name: string): string | null {
  try {
    return require.resolve(name, { paths: [dirname(require.resolve('mqtt-packet'))] });
  } catch {
    return null;
  }
}

function quietMqttPacketDebug(): void {
  if (process.env['DEBUG'] !== undefined && process.env['DEBUG'] !== '') return;
  const debugPath = resolveFromMqttPacket('debug');
  if (debugPath === null) return;
  const real = (require.cache[debugPath]?.exports ?? require(debugPath)) as DebugFactory;
  if (real['pulsegateQuiet'] === true) return;
  const quiet = function noop(): void {};
  Object.assign(quiet, { enabled: false, namespace: 'mqtt-packet', extend: () => quiet, destroy: () => true, log: quiet });
  const factory = Object.assign((namespace: string) => (namespace.startsWith('mqtt-packet:') ? quiet : real(namespace)), real, { pulsegateQuiet: true });
  require.cache[debugPath]!.exports = factory;
}

/** The byte at `offset` of the list (0 <= offset < length), read in place. */
function byteAt(list: BufferListLike, offset: number): number {
  const bufs = list._bufs;
  for (let i = 0; i < bufs.length; i++) {
    const b = bufs[i]!;
    if (offset < b.length) return b[offset]!;
    offset -= b.length;
  }
  return NaN; // not reached: callers check the range
}

/** A big-endian unsigned read of `bytes` bytes, in place, for offsets inside the list; others go to `original`. */
function inPlaceReader(bytes: number, original: Reader): Reader {
  return function read(this: BufferListLike, offset = 0): number {
    if (!Number.isInteger(offset) || offset < 0 || offset + bytes > this.length) return original.call(this, offset);
    let value = 0;
    for (let i = 0; i < bytes; i++) value = value * 256 + byteAt(this, offset + i);
    return value;
  };
}

/** toString of a range inside one of the list's buffers, decoded in place; anything else goes to `original`. */
function inPlaceToString(original: ToString): ToString {
  return function toString(this: BufferListLike, encoding?: BufferEncoding, start?: number, end?: number): string {
    if (typeof start !== 'number' || typeof end !== 'number' || !Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > this.length) {
      return original.call(this, encoding, start, end);
    }
    const bufs = this._bufs;
    let base = 0;
    for (let i = 0; i < bufs.length; i++) {
      const b = bufs[i]!;
      if (start < base + b.length) return end <= base + b.length ? b.toString(encoding, start - base, end - base) : original.call(this, encoding, start, end);
      base += b.length;
    }
    return original.call(this, encoding, start, end);
  };
}

export function tuneBufferListReads(prototypes: readonly Record<string, unknown>[]): void {
  for (const proto of prototypes) {
    if (Object.hasOwn(proto, 'pulsegateInPlaceReads')) continue;
    for (const [name, bytes] of [['readUInt8', 1], ['readUInt16BE', 2], ['readUInt32BE', 4]] as const) {
      const original = proto[name] as Reader | undefined;
      if (typeof original === 'function') proto[name] = inPlaceReader(bytes, original);
    }
    if (typeof proto['toString'] === 'function') proto['toString'] = inPlaceToString(proto['toString'] as ToString);
    proto['pulsegateInPlaceReads'] = true;
  }
}

function tuneMqttPacketBufferList(): void {
  const blPath = resolveFromMqttPacket('bl');
  if (blPath === null) return;
  const bl = require(blPath) as { prototype?: Record<string, unknown>; BufferList?: { prototype: Record<string, unknown> } };
  // mqtt-packet parses with a BufferListStream, whose prototype got copies of BufferList's methods.
  tuneBufferListReads([bl.prototype, bl.BufferList?.prototype].filter((p): p is Record<string, unknown> => p !== undefined));
}

quietMqttPacketDebug();
tuneMqttPacketBufferList();

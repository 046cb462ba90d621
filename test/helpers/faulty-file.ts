import { open, type FileHandle } from 'node:fs/promises';

/** The errno codes a disk hands back that the tests need. */
export type FaultCode = 'EIO' | 'ENOSPC';

/** A datasync that resolved without syncing: what the caller was told is durable but is not. */
export interface UnsyncedClaim {
  readonly path: string;
  /** File size when the datasync "succeeded": the bytes claimed durable. */
  readonly size: number;
  /** File size at the last datasync that really synced (what survives a power cut). */
  readonly syncedSize: number;
}

/**
 * Opens REAL file handles (node:fs/promises open) whose write() and datasync() can be made to
 * fail, stall or not sync on command. Pass `openFile` to the message log's `openFile` seam.
 * Only handles opened for writing are wrapped; read-only handles are the plain ones.
 */
export interface FaultyFiles {
  readonly openFile: (path: string, flags: string) => Promise<FileHandle>;
  /** The next `times` writes (default: every write until heal()) reject with `code`, writing nothing. */
  failWrites(code: FaultCode, times?: number): void;
  /** The next `times` datasyncs (default: every one until heal()) reject with `code`, syncing nothing. */
  failDatasyncs(code: FaultCode, times?: number): void;
  /** From now on every datasync waits (before it syncs) until release(). */
  stallDatasyncs(): void;
  /** From now on every write waits (before it writes) until release(). */
  stallWrites(): void;
  /** Writes and datasyncs waiting in a stall. */
  readonly stalled: number;
  /** Stops stalling; the waiting writes and datasyncs go ahead (for real). */
  release(): void;
  /** While on, datasync resolves at once without syncing; each such claim is recorded. */
  skipDatasyncs(on: boolean): void;
  readonly unsyncedClaims: readonly UnsyncedClaim[];
  /** File size at the last completed real datasync of `path` (0 when none). */
  syncedSize(path: string): number;
  /** Real datasyncs completed so far. */
  readonly datasyncs: number;
  /** Faults (failed writes and datasyncs) injected so far. */
  readonly injected: number;
  /** Clears every fault and releases a stall. */
  heal(): void;
}

function fault(code: FaultCode, syscall: string, path: string): NodeJS.ErrnoException {
  const message = code === 'EIO' ? 'i/o error' : 'no space left on device';
  const err: NodeJS.ErrnoException = new Error(`${code}: ${message}, ${syscall} (injected) '${path}'`);
  err.code = code;
  err.errno = code === 'EIO' ? -5 : -28;
  err.syscall = syscall;
  err.path = path;
  return err;
}

function writable(flags: string): boolean {
  return /[wa+]/.test(flags);
}

export function createFaultyFiles(): FaultyFiles {
  let writeFault: { code: FaultCode; left: number } | null = null;
  let syncFault: { code: FaultCode; left: number } | null = null;
  let stalling = false;
  let stallingWrites = false;
  let skipping = false;
  let stalledOps: (() => void)[] = [];
  const claims: UnsyncedClaim[] = [];
  const synced = new Map<string, number>();
  let datasyncs = 0;
  let injected = 0;

  const take = (f: { code: FaultCode; left: number } | null): FaultCode | null => {
    if (f === null || f.left <= 0) return null;
    f.left--;
    injected++;
    return f.code;
  };

  function wrap(fh: FileHandle, path: string): FileHandle {
    const write = async (...args: unknown[]): Promise<unknown> => {
      if (stallingWrites) await new Promise<void>((resolve) => stalledOps.push(resolve));
      const code = take(writeFault);
      if (code !== null) throw fault(code, 'write', path);
      return (fh.write as (...a: unknown[]) => Promise<unknown>)(...args);
    };
    const datasync = async (): Promise<void> => {
      if (stalling) await new Promise<void>((resolve) => stalledOps.push(resolve));
      const code = take(syncFault);
      if (code !== null) throw fault(code, 'fdatasync', path);
      if (skipping) {
        claims.push({ path, size: (await fh.stat()).size, syncedSize: synced.get(path) ?? 0 });
        return;
      }
      await fh.datasync();
      datasyncs++;
      synced.set(path, (await fh.stat()).size);
    };
    return new Proxy(fh, {
      get(target, prop) {
        if (prop === 'write') return write;
        if (prop === 'datasync') return datasync;
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  return {
    async openFile(path, flags) {
      const fh = await open(path, flags);
      return writable(flags) ? wrap(fh, path) : fh;
    },
    failWrites(code, times = Infinity) {
      writeFault = { code, left: times };
    },
    failDatasyncs(code, times = Infinity) {
      syncFault = { code, left: times };
    },
    stallDatasyncs() {
      stalling = true;
    },
    stallWrites() {
      stallingWrites = true;
    },
    get stalled() {
      return stalledOps.length;
    },
    release() {
      stalling = false;
      stallingWrites = false;
      for (const go of stalledOps.splice(0)) go();
    },
    skipDatasyncs(on) {
      skipping = on;
    },
    get unsyncedClaims() {
      return claims;
    },
    syncedSize(path) {
      return synced.get(path) ?? 0;
    },
    get datasyncs() {
      return datasyncs;
    },
    get injected() {
      return injected;
    },
    heal() {
      writeFault = null;
      syncFault = null;
      skipping = false;
      this.release();
    },
  };
}

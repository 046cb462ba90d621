import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.js';

/** Name of the lock file in a locked directory. */
export const LOCK_FILE = 'pulsegate.lock';

/** What a lock file holds: enough to tell a live owner from a dead one whose PID was reused. */
interface LockOwner {
  readonly pid: number;
  /** Start time of the owner process in clock ticks since boot (/proc/<pid>/stat field 22); null off Linux. */
  readonly startTicks: string | null;
  /** /proc/sys/kernel/random/boot_id; a lock from an earlier boot is always stale. */
  readonly bootId: string | null;
  readonly token: string;
  readonly acquiredAt: string;
}

export interface DirLock {
  readonly path: string;
  /** Idempotent: removes the lock file if it is still ours. */
  release(): Promise<void>;
}

function readProc(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    // Not Linux, or the process is gone: the check falls back to the PID alone.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ESRCH') return null;
    throw err;
  }
}

/** Field 22 (starttime) of /proc/<pid>/stat; the command name (field 2) may hold spaces and parens. */
export function processStartTicks(pid: number): string | null {
  const stat = readProc(`/proc/${pid}/stat`);
  if (stat === null) return null;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] ?? null;
}

function bootId(): string | null {
  return readProc('/proc/sys/kernel/random/boot_id')?.trim() ?? null;
}

function parseOwner(text: string): LockOwner | null {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (!Number.isSafeInteger(o.pid) || typeof o.token !== 'string') return null;
    return o as LockOwner;
  } catch (err) {
    // An empty or half-written file (a crash between create and write) has no owner to ask.
    if (err instanceof SyntaxError) return null;
    throw err;
  }
}

/** Why the owner of a lock is known to be gone, or null when it may still be running. */
function staleReason(owner: LockOwner): string | null {
  const boot = bootId();
  if (owner.bootId !== null && boot !== null && owner.bootId !== boot) return 'it was taken before the last reboot';
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return `process ${owner.pid} is gone`;
    // EPERM: a process of another user has the PID: alive as far as we can tell (start time below).
    if (code !== 'EPERM') throw err;
  }
  const ticks = processStartTicks(owner.pid);
  if (owner.startTicks !== null && ticks !== null && ticks !== owner.startTicks) return `PID ${owner.pid} now belongs to another process`;
  return null;
}

/**
 * Takes the exclusive lock of `dir` (created if missing): `<dir>/pulsegate.lock`, created with
 * O_EXCL and holding the owner's PID, process start time and boot id. A lock whose owner is gone
 * (kill -9, power loss, PID reused by another process) is taken over with a warning naming the old
 * owner; a live owner makes this throw GW_ERR_DATA_DIR_LOCKED. Two gateways writing one log would
 * interleave offsets and corrupt it, which only shows at the next start.
 *
 * Like any lock file, it cannot stop two processes that find the same stale lock at the very same
 * moment from both taking it over; the token check after the takeover narrows that window.
 */
export async function lockDirectory(dir: string, logger?: Logger): Promise<DirLock> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, LOCK_FILE);
  const me: LockOwner = {
    pid: process.pid,
    startTicks: processStartTicks(process.pid),
    bootId: bootId(),
    token: randomUUID(),
    acquiredAt: new Date().toISOString(),
  };
  const text = `${JSON.stringify(me)}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fh = await open(path, 'wx');
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      // A racing takeover may have replaced the file between our create and now.
      const now = parseOwner(await readFile(path, 'utf8'));
      if (now?.token !== me.token) continue;
      return handle(path, me.token);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new GatewayError('GW_ERR_DATA_DIR_LOCKED', `cannot create the lock file ${path}: ${(err as Error).message}`, { cause: err });
      }
    }
    let owner: LockOwner | null;
    try {
      owner = parseOwner(await readFile(path, 'utf8'));
      if (owner === null && attempt === 0) {
        // Maybe another gateway is between its create and its write: look again shortly.
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
      throw err;
    }
    const reason = owner === null ? 'the lock file is empty or unreadable' : staleReason(owner);
    if (reason === null) {
      throw new GatewayError(
        'GW_ERR_DATA_DIR_LOCKED',
        `${dir} is in use by another pulsegate (PID ${owner!.pid}, since ${owner!.acquiredAt}); two gateways on one data directory would corrupt its log. Stop the other one, or give this one another dataDir`,
        { details: { dir, pid: owner!.pid } },
      );
    }
    logger?.warn({ lock: path, oldPid: owner?.pid ?? null, reason }, `taking over a stale lock of ${dir}: ${reason}`);
    try {
      await unlink(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  throw new GatewayError('GW_ERR_DATA_DIR_LOCKED', `could not take the lock ${path}: another process keeps replacing it`);
}

function handle(path: string, token: string): DirLock {
  let released: Promise<void> | null = null;
  return {
    path,
    release() {
      released ??= (async () => {
        try {
          const owner = parseOwner(await readFile(path, 'utf8'));
          if (owner?.token === token) await unlink(path);
        } catch (err) {
          // Already gone (the directory was deleted, say): nothing to release.
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      })();
      return released;
    },
  };
}

function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * Locks the data directory, and `logDir` too when it lies outside it; when the second lock is
 * refused, the first is released. `release()` removes every lock taken (a failure is logged).
 */
export async function lockDirectories(dataDir: string, logDir: string, logger: Logger): Promise<{ release(): Promise<void> }> {
  const locks: DirLock[] = [await lockDirectory(dataDir, logger)];
  const release = async (): Promise<void> => {
    for (const l of locks.splice(0)) {
      await l.release().catch((err: unknown) => logger.warn({ err, lock: l.path }, 'could not remove the lock file'));
    }
  };
  try {
    if (!isInside(logDir, dataDir)) locks.push(await lockDirectory(logDir, logger));
  } catch (err) {
    await release();
    throw err;
  }
  return { release };
}

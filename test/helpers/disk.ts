import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Mounts a real tmpfs of `sizeMb` (needs root), so ENOSPC comes from the kernel. Returns null,
 * after saying why on stderr, where mount is not allowed: the caller skips its suite.
 */
export function mountTmpfs(sizeMb: number, prefix = 'pg-tmpfs-'): { dir: string; unmount: () => void } | null {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    process.stderr.write(`disk-full tests skipped: cannot mount a tmpfs (${(err as Error).message.split('\n')[0]})\n`);
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  return {
    dir,
    unmount() {
      execFileSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Fills the filesystem holding `dir` with one file until ENOSPC; returns the file's path. */
export function fillDisk(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0xaa);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
    // The last pages: a smaller write may still fit.
    try {
      for (;;) writeSync(fd, chunk, 0, 512);
    } catch (err2) {
      if ((err2 as NodeJS.ErrnoException).code !== 'ENOSPC') throw err2;
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

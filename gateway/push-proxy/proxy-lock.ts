import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GatewayError } from '../errors.js';

/**
 * One push proxy per data directory: two would push every event twice. The lock file holds the
 * owner's pid; a lock left by a process that no longer runs (kill -9) is taken over.
 */
export function lockProxyDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const file = join(dataDir, 'push-proxy.lock');
  for (let tries = 0; tries < 2; tries++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new GatewayError('GW_ERR_DATA_DIR_LOCKED', `cannot create ${file}: ${(err as Error).message}`, { cause: err });
    }
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (Number.isSafeInteger(pid) && pid > 0 && alive(pid)) {
      throw new GatewayError('GW_ERR_DATA_DIR_LOCKED', `another push proxy (pid ${pid}) uses ${dataDir}; stop it, or give this one its own pushProxy.dataDir`);
    }
    rmSync(file, { force: true }); // left by a process that is gone
  }
  throw new GatewayError('GW_ERR_DATA_DIR_LOCKED', `could not take ${file}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

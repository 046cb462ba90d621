import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnCli, waitUntilReady, type ChildGateway } from './child-gateway.js';

/**
 * Starts `pulsegate start --config <dataDir>/gateway.json` as a child process (for settings the
 * PULSEGATE_* variables do not cover), on free loopback ports, and waits for "pulsegate ready".
 * `config` is merged over { dataDir, ports 0 on 127.0.0.1, anonymous access }.
 */
export async function startChildGatewayWithConfig(dataDir: string, config: Record<string, unknown>, timeoutMs = 30_000): Promise<ChildGateway> {
  const file = join(dataDir, 'gateway.json');
  const full = {
    dataDir,
    logLevel: 'info',
    ...config,
    mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true, ...(config['mqtt'] as object | undefined) },
    http: { port: 0, host: '127.0.0.1', ...(config['http'] as object | undefined) },
  };
  writeFileSync(file, JSON.stringify(full, null, 2));
  return waitUntilReady(spawnCli(['start', '--config', file]), timeoutMs);
}

/** Resident set size of a process in bytes, from /proc/<pid>/status (Linux); null once it is gone. */
export function rssBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? null : Number(m[1]) * 1024;
  } catch (err) {
    // The process exited between two samples; anything else is a real failure.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ESRCH') return null;
    throw err;
  }
}

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnCli, type ChildGateway } from './child-gateway.js';

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
  const { child, output, exited } = spawnCli(['start', '--config', file]);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const line of output) {
      if (!line.includes('"pulsegate ready"')) continue;
      const entry = JSON.parse(line) as { mqtt: number; http: number; ws: number | null };
      return { child, output, exited, ports: { mqtt: entry.mqtt, http: entry.http, ws: entry.ws } };
    }
    if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode}:\n${output.join('\n')}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`gateway not ready within ${timeoutMs} ms:\n${output.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resident set size of a process in bytes, from /proc/<pid>/status (Linux); null once it is gone. */
export function rssBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    // The process exited between two samples.
    return null;
  }
}

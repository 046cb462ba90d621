/**
 * The IPC side of a benchmark child process: answers {cmd: 'stats'} with its counters and
 * announces readiness on stdout as one JSON line carrying `"bench":"ready"`.
 */
import { monoMs } from './stats.js';

export interface CountingStats {
  publishes: number;
  bytes: number;
  connections: number;
}

export function serveStats(getStats: () => Record<string, unknown>): void {
  process.on('message', (msg: unknown) => {
    const m = msg as { cmd?: string; id?: number };
    if (m.cmd === 'stats') process.send?.({ id: m.id, at: monoMs(), ...getStats() });
  });
  // The harness owns this process: when it goes away, so does this one.
  process.on('disconnect', () => process.exit(0));
}

export function announceReady(info: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify({ bench: 'ready', pid: process.pid, ...info }) + '\n');
}

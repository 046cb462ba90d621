import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogConsumer } from '../../../gateway/log/log-consumer.js';
import { createMessageLog } from '../../../gateway/log/message-log.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { mulberry32 } from '../../helpers/random.js';
import { CHILD_LOG_OPTIONS } from './consume-child.js';

const CHILD = fileURLToPath(new URL('./consume-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAX_RECORDS = 200_000;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pulsegate-consumer-kill-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Runs the child, SIGKILLs it `killAfterMs` after its first handled record (or, with `max` 0, once
 * it says it caught up); returns its cursor at start and what it handled.
 */
function runAndKill(killAfterMs: number, max = MAX_RECORDS): Promise<{ cursor: number; handled: number[]; caughtUp: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(max)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let cursor = -1;
    let caughtUp = -1;
    const handled: number[] = [];
    let pending = '';
    let stderr = '';
    let timer: NodeJS.Timeout | null = null;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        const [word, n] = line.split(' ');
        if (word === 'cursor') cursor = Number(n);
        if (word === 'caught-up') {
          caughtUp = Number(n);
          child.kill('SIGKILL');
        }
        if (word === 'h') {
          handled.push(Number(n));
          if (max > 0) timer ??= setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        }
      }
    });
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (timer !== null) clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`consumer child exited with ${code}: ${stderr}`));
      else resolve({ cursor, handled, caughtUp });
    });
  });
}

function expectConsecutive(offsets: readonly number[], from: number): void {
  for (let i = 0; i < offsets.length; i++) {
    // Plain check: expect() per record is too slow for tens of thousands.
    if (offsets[i] !== from + i) throw new Error(`handled ${offsets[i]} where ${from + i} was due (in log order, none skipped)`);
  }
}

describe('log consumer under SIGKILL', () => {
  it('log consumer killed at a random moment should resume from its durable cursor, in order, losing no record', async () => {
    const random = mulberry32(20261202);
    const seen = new Set<number>();
    let previous: { cursor: number; handled: number[] } | null = null;
    let again = 0;
    // Two kills mid-stream, then one once the child has handled everything and says its cursor is on disk.
    for (let round = 0; round < 3; round++) {
      const run = await runAndKill(100 + Math.floor(random() * 300), round < 2 ? MAX_RECORDS : 0);
      expect(run.cursor).toBeGreaterThanOrEqual(0);
      expectConsecutive(run.handled, run.cursor);
      if (previous !== null) {
        const lastHandled = previous.cursor + previous.handled.length;
        // Resumed from the cursor on disk: not from the start, and not past what was handled.
        expect(run.cursor).toBeGreaterThan(previous.cursor);
        expect(run.cursor).toBeLessThanOrEqual(lastHandled);
        again += lastHandled - run.cursor;
      }
      if (round === 2) expect(run.caughtUp).toBe(run.cursor + run.handled.length);
      for (const o of run.handled) seen.add(o);
      previous = run;
    }
    const log = await createMessageLog({ dir: `${dir}/log`, ...CHILD_LOG_OPTIONS });
    await log.start();
    const end = log.nextOffset;
    for (let o = 0; o < end; o++) if (!seen.has(o)) throw new Error(`record ${o} was never handled`);
    // At least once, not "all again": what is handled twice is about one cursor write per kill.
    expect(again).toBeLessThan(end);
    // Killed with its cursor caught up: a restart hands out only what is new, nothing twice.
    for (let i = 0; i < 100; i++) log.append(RECORD_TYPES.ingest, Buffer.from(`r-${end + i}`));
    await log.whenDurable(end + 99);
    const rest: number[] = [];
    const consumer = createLogConsumer({
      log,
      name: 'store',
      types: [RECORD_TYPES.ingest],
      stateDir: `${dir}/state`,
      retry: { initialMs: 1, maxMs: 10 },
      handle: async (r) => void rest.push(r.offset),
    });
    await consumer.start();
    const t0 = Date.now();
    while (consumer.position < end + 100) {
      if (Date.now() - t0 > 20_000) throw new Error(`consumer stuck at ${consumer.position} of ${end + 100}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    await consumer.close();
    await log.close();
    expect(rest).toEqual(Array.from({ length: 100 }, (_, i) => end + i));
  }, 60_000);
});

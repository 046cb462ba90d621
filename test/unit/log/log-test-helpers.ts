import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMessageLog, type FileMessageLog, type MessageLogOptions } from '../../../gateway/log/message-log.js';
import type { LogRecord } from '../../../gateway/log/types.js';
import { waitFor } from '../../helpers/wait.js';

export async function tempDir(prefix = 'pulsegate-log-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function openLog(dir: string, extra: Partial<MessageLogOptions> = {}): Promise<FileMessageLog> {
  const log = await createMessageLog({ dir, groupCommitIntervalMs: 1, groupCommitMaxBytes: 4096, segmentMaxBytes: 16 * 1024, ...extra });
  await log.start();
  return log;
}

export function payloadFor(i: number): Buffer {
  return Buffer.from(`reading-${i}-${'x'.repeat(i % 50)}`);
}

export async function appendMany(log: FileMessageLog, n: number, start = 0): Promise<number[]> {
  const offsets: number[] = [];
  for (let i = start; i < start + n; i++) offsets.push(log.append(1, payloadFor(i)));
  await log.whenDurable(offsets[offsets.length - 1]!);
  return offsets;
}

export async function readAll(log: FileMessageLog, from = 0, to?: number): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for await (const r of log.read(from, to)) out.push({ ...r, payload: Buffer.from(r.payload) });
  return out;
}

export async function segmentFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => f.endsWith('.seg')).sort();
}

export function until(cond: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  return waitFor(cond, { timeoutMs, what, intervalMs: 5 });
}

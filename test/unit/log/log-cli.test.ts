import { open, stat, truncate, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeIngestRecord } from '../../../gateway/log/ingest-record-format.js';
import { runLogCommand } from '../../../gateway/log/log-cli.js';
import { encodeOutgoing } from '../../../gateway/log/outbox.js';
import { HEADER_BYTES } from '../../../gateway/log/record-format.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { encodeBatch } from '../../../gateway/sinks/batch-codec.js';
import { appendMany, openLog, segmentFiles, tempDir } from './log-test-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('pulsegate-logcli-'));
});
afterEach(async () => {
  await cleanup();
});

async function run(argv: string[]): Promise<{ code: number; text: string }> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  const code = await runLogCommand(argv, out);
  return { code, text: Buffer.concat(chunks).toString('utf8') };
}

describe('log cli', () => {
  it('log cli should inspect records from an offset with a limit', async () => {
    const log = await openLog(dir);
    await appendMany(log, 100);
    log.append(RECORD_TYPES.ingest, encodeIngestRecord(0, 'sensors/heart-rate/dev-1', Buffer.from('{"bpm":70}')));
    await log.appendDurable(RECORD_TYPES.outgoing, encodeOutgoing('influx', Buffer.from('batch')));
    await log.appendDurable(RECORD_TYPES.outgoing, encodeOutgoing('embedded', encodeBatch({ readings: [], windows: [], health: [], covers: { from: 40, below: 101 } })));
    await log.close();
    const { code, text } = await run(['log', 'inspect', dir, '--from', '98', '--limit', '3']);
    expect(code).toBe(0);
    const lines = text.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^98\tingest\t\d{4}-\d\d-\d\dT[\d:.]+Z\t\d+\t.*"reading-98-/);
    expect(lines[2]).toContain('topic=sensors/heart-rate/dev-1');
    const tail = await run(['inspect', dir, '--from', '101']);
    expect(tail.text).toMatch(/^101\toutgoing\t.*destination=influx "batch"/);
    // A store batch shows the ingest records it completes.
    expect(tail.text).toMatch(/\n102\toutgoing\t.*destination=embedded covers=\[40,101\) /);
  });

  it('log cli should verify a clean log', async () => {
    const log = await openLog(dir);
    await appendMany(log, 500);
    await log.close();
    const { code, text } = await run(['verify', dir]);
    expect(code).toBe(0);
    expect(text).toContain('records: 500');
    expect(text).toContain('offsets: 0..499');
    expect(text).toMatch(/ok\n$/);
  });

  it('log cli should fail verify on a damaged record, naming segment and offset', async () => {
    const log = await openLog(dir);
    await appendMany(log, 2000);
    await log.close();
    const files = await segmentFiles(dir);
    const victim = files[1]!;
    const fh = await open(join(dir, victim), 'r+');
    await fh.write(Buffer.from([0xaa]), 0, 1, HEADER_BYTES + 2);
    await fh.close();
    const { code, text } = await run(['verify', dir]);
    expect(code).toBe(1);
    expect(text).toContain(`CORRUPT: ${victim}: crc damage at offset ${Number(victim.slice(0, 20))}`);
  });

  it('log cli should fail verify on a missing segment and only note a torn tail', async () => {
    const log = await openLog(dir);
    await appendMany(log, 2000);
    await log.close();
    const files = await segmentFiles(dir);
    const last = join(dir, files[files.length - 1]!);
    await truncate(last, (await stat(last)).size - 5);
    let r = await run(['verify', dir]);
    expect(r.code).toBe(0);
    expect(r.text).toContain('torn tail');
    await unlink(join(dir, files[2]!));
    r = await run(['verify', dir]);
    expect(r.code).toBe(1);
    expect(r.text).toContain(`CORRUPT: ${files[3]}: offsets ${Number(files[2]!.slice(0, 20))}..`);
  });

  it('log cli should print usage for an unknown command', async () => {
    expect((await run(['frobnicate'])).code).toBe(2);
    expect((await run(['inspect'])).code).toBe(2);
  });
});

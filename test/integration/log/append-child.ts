/**
 * Test helper process: appends records to the log in DIR for as long as it lives and prints
 * "durable <offset>" each time a group commit makes records durable. The parent kills it with
 * SIGKILL at a random moment and checks that everything reported durable survived.
 *
 *   node --import tsx test/integration/log/append-child.ts DIR
 */
import { createMessageLog } from '../../../gateway/log/message-log.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';

export function childPayload(offset: number): Buffer {
  return Buffer.from(`p-${offset}-${'x'.repeat(offset % 97)}`);
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (dir === undefined) throw new Error('usage: append-child.ts DIR');
  const log = await createMessageLog({ dir, segmentMaxBytes: 256 * 1024, groupCommitMaxBytes: 64 * 1024, groupCommitIntervalMs: 2 });
  await log.start();
  process.stdout.write(`started ${log.nextOffset}\n`);
  let reported = -1;
  let highest = -1;
  let scheduled = false;
  const onDurable = (err: Error | null, offset: number): void => {
    if (err !== null) throw err;
    if (offset > highest) highest = offset;
    if (!scheduled) {
      scheduled = true;
      // One line per callback batch: durability is in offset order, so the highest says it all.
      setImmediate(() => {
        scheduled = false;
        if (highest > reported) {
          reported = highest;
          process.stdout.write(`durable ${highest}\n`);
        }
      });
    }
  };
  for (;;) {
    let last = -1;
    for (let i = 0; i < 500; i++) {
      const offset = log.nextOffset;
      last = log.append(RECORD_TYPES.ingest, childPayload(offset), onDurable);
    }
    // Keep a bounded amount in flight so the group buffer does not run away from the disk.
    if (last - log.durableOffset > 5000) await log.whenDurable(last - 2500);
    else await new Promise((r) => setImmediate(r));
  }
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}

/**
 * Test helper process: appends records to the log in DIR/log (up to MAX in all) while a log
 * consumer with its cursor in DIR/state handles them; each handled record prints "h <offset>"
 * (a synchronous write, so it is in the pipe before handle resolves: the handler's effect).
 * Prints "cursor <offset>" once the consumer has loaded its cursor, and "caught-up <offset>" once
 * appends are done and the cursor on disk covers every record. The parent kills it with
 * SIGKILL and checks at-least-once, in-order delivery across restarts.
 *
 *   node --import tsx test/integration/log/consume-child.ts DIR MAX
 */
import { writeSync } from 'node:fs';
import { createLogConsumer } from '../../../gateway/log/log-consumer.js';
import { createMessageLog } from '../../../gateway/log/message-log.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';

export const CHILD_LOG_OPTIONS = { segmentMaxBytes: 64 * 1024, groupCommitMaxBytes: 16 * 1024, groupCommitIntervalMs: 2 } as const;

async function main(): Promise<void> {
  const dir = process.argv[2];
  const max = Number(process.argv[3]);
  if (dir === undefined || !Number.isSafeInteger(max)) throw new Error('usage: consume-child.ts DIR MAX');
  const log = await createMessageLog({ dir: `${dir}/log`, ...CHILD_LOG_OPTIONS });
  await log.start();
  const consumer = createLogConsumer({
    log,
    name: 'store',
    types: [RECORD_TYPES.ingest],
    stateDir: `${dir}/state`,
    cursorPersistIntervalMs: 5,
    retry: { initialMs: 1, maxMs: 10 },
    handle: async (r) => {
      writeSync(1, `h ${r.offset}\n`);
    },
  });
  await consumer.start();
  writeSync(1, `cursor ${consumer.position}\n`);
  while (log.nextOffset < max) {
    let last = -1;
    for (let i = 0; i < 100 && log.nextOffset < max; i++) last = log.append(RECORD_TYPES.ingest, Buffer.from(`r-${log.nextOffset}`));
    await log.whenDurable(last);
  }
  // Appends done: say so once every record is handled and the cursor on disk has caught up.
  const timer = setInterval(() => {
    if (consumer.position === log.nextOffset && consumer.oldestUnackedOffset === consumer.position) {
      clearInterval(timer);
      writeSync(1, `caught-up ${consumer.position}\n`);
    }
  }, 5);
}

if (process.argv[1] !== undefined && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}

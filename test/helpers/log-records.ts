import { createMessageLog } from '../../gateway/log/message-log.js';
import type { LogRecord } from '../../gateway/log/types.js';

/** Every record of a closed gateway's log directory, read through the log itself. */
export async function readLogRecords(dir: string): Promise<LogRecord[]> {
  const log = await createMessageLog({ dir });
  await log.start();
  const out: LogRecord[] = [];
  try {
    for await (const r of log.read(log.firstOffset)) out.push(r);
  } finally {
    await log.close();
  }
  return out;
}

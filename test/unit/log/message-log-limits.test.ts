import { rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { isGatewayError } from '../../../gateway/errors.js';
import { MAX_PAYLOAD_BYTES } from '../../../gateway/log/record-format.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { observe } from '../../helpers/wait.js';
import { openLog, readAll, tempDir, until } from './log-test-helpers.js';

describe('message log limits', () => {
  it('huge publish: an append over the record limit is refused through its callback, never thrown, and the log keeps appending', async () => {
    const { dir, cleanup } = await tempDir();
    const log = await openLog(dir);
    try {
      const before = log.append(RECORD_TYPES.ingest, Buffer.from('before'));
      let offset = 0;
      const refused = await new Promise<Error | null>((resolve) => {
        offset = log.append(RECORD_TYPES.deadLetter, Buffer.alloc(MAX_PAYLOAD_BYTES + 1), (err) => resolve(err));
      });
      expect(offset).toBe(-1);
      expect(isGatewayError(refused, 'GW_ERR_LOG_IO')).toBe(true);
      expect(refused?.message).toContain('exceeds the log');
      const after = await log.appendDurable(RECORD_TYPES.ingest, Buffer.from('after'));
      expect(after).toBe(before + 1);
      expect((await readAll(log)).map((r) => r.payload.toString())).toEqual(['before', 'after']);
    } finally {
      await log.close();
      await cleanup();
    }
  });

  it('data directory deleted under a running log: appends are refused and writeFailure names it, instead of acking writes to an unlinked file', async () => {
    const { dir, cleanup } = await tempDir();
    const log = await openLog(dir, { fileCheckIntervalMs: 20, writeRetryInitialMs: 20, writeRetryMaxMs: 50 });
    try {
      await log.appendDurable(RECORD_TYPES.ingest, Buffer.from('kept'));
      await rm(dir, { recursive: true, force: true });
      await until(() => log.writeFailure !== null, 5000, 'the log notices its file is gone');
      expect(log.writeFailure?.message).toContain('was removed from');
      expect(log.backpressured).toBe(true);
      const refused = await new Promise<Error | null>((resolve) => log.append(RECORD_TYPES.ingest, Buffer.from('after'), (err) => resolve(err)));
      expect(isGatewayError(refused, 'GW_ERR_LOG_IO')).toBe(true);
      // Repairs keep failing while the path is gone: nothing is acknowledged again.
      // Bounded observation window: 200 ms, several repair attempts at 20..50 ms apart.
      await observe(200);
      expect(log.writeFailure).not.toBeNull();
    } finally {
      await log.close();
      await cleanup();
    }
  });
});

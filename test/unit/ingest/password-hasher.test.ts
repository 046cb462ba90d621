import { pbkdf2, randomBytes, scryptSync } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayError } from '../../../gateway/errors.js';
import { createPasswordHasher, type PasswordHasher } from '../../../gateway/ingest/password-hasher.js';

const params = { N: 16384, r: 8, p: 1 };
let hasher: PasswordHasher | null = null;
afterEach(async () => {
  await hasher?.close();
  hasher = null;
});

describe('password hasher', () => {
  it('should compute exactly what crypto.scryptSync computes', async () => {
    hasher = createPasswordHasher({ workers: 2, maxQueued: 8 });
    const salt = randomBytes(16);
    const keys = await Promise.all(['one', 'two', 'three'].map((s) => hasher!.scrypt(Buffer.from(s), salt, 32, params)));
    expect(keys.map((k) => k.toString('hex'))).toEqual(['one', 'two', 'three'].map((s) => scryptSync(s, salt, 32, params).toString('hex')));
    expect(hasher.stats.completed).toBe(3);
  });

  it("login floods starve the log: a password hash does not wait behind work queued on libuv's thread pool", async () => {
    hasher = createPasswordHasher({ workers: 1, maxQueued: 8 });
    await hasher.scrypt(Buffer.from('warm-up'), randomBytes(16), 32, params); // the worker has started
    // Fill libuv's pool (4 threads unless UV_THREADPOOL_SIZE says otherwise) with slow jobs, as
    // the log's writes and fdatasync would queue there.
    const poolSize = Math.max(4, Number(process.env['UV_THREADPOOL_SIZE'] ?? 4));
    // Three rounds of them: a hash queued behind them would come back only after two rounds had
    // finished. On a loaded machine a round may finish while the hash runs, so one round is allowed.
    let poolJobsDone = 0;
    const poolJobs = Array.from({ length: 3 * poolSize }, () => new Promise<void>((resolve) => pbkdf2('x', 'salt', 600_000, 32, 'sha256', () => resolve(void poolJobsDone++))));
    await hasher.scrypt(Buffer.from('a-secret'), randomBytes(16), 32, params);
    // The hash came back before a second round of pool jobs had finished.
    expect(poolJobsDone).toBeLessThanOrEqual(poolSize);
    await Promise.all(poolJobs);
  });

  it('should refuse at once (GW_ERR_AUTH_BUSY) when maxQueued hashes already wait, and serve the queued ones', async () => {
    hasher = createPasswordHasher({ workers: 1, maxQueued: 2 });
    const salt = randomBytes(16);
    const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => hasher!.scrypt(Buffer.from(`s${i}`), salt, 32, params)));
    const fulfilled = results.filter((r) => r.status === 'fulfilled').length;
    const refused = results.filter((r) => r.status === 'rejected' && r.reason instanceof GatewayError && r.reason.code === 'GW_ERR_AUTH_BUSY').length;
    // one running + two queued; three refused
    expect([fulfilled, refused]).toEqual([3, 3]);
    expect(hasher.stats.refused).toBe(3);
  });

  it('should reject the hashes still waiting when closed, and refuse new ones', async () => {
    hasher = createPasswordHasher({ workers: 1, maxQueued: 4 });
    const pending = Array.from({ length: 3 }, () => hasher!.scrypt(Buffer.from('x'), randomBytes(16), 32, params).then(() => 'hashed', (err: Error) => err.message));
    await hasher.close();
    expect(await Promise.all(pending)).toEqual(['password hasher closed', 'password hasher closed', 'password hasher closed']);
    await expect(hasher.scrypt(Buffer.from('x'), randomBytes(16), 32, params)).rejects.toThrow(/closed/);
  });
});

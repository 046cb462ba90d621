import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCheckpointStore } from '../../../gateway/log/checkpoint-store.js';
import { tempDir } from './log-test-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('pulsegate-ckpt-'));
});
afterEach(async () => {
  await cleanup();
});

describe('checkpoint store', () => {
  it('checkpoint store should return null before any checkpoint', async () => {
    const store = await createCheckpointStore({ dir });
    expect(await store.read()).toBeNull();
    expect(store.latestOffset).toBeNull();
  });

  it('checkpoint store should read back the newest checkpoint after reopening, keeping the last two', async () => {
    let store = await createCheckpointStore<{ windows: number[] }>({ dir, name: 'window' });
    for (let i = 1; i <= 5; i++) await store.write({ offset: i * 100, data: { windows: [i] } });
    expect(store.latestOffset).toBe(500);
    const files = (await readdir(dir)).filter((f) => f.endsWith('.ckpt'));
    expect(files).toHaveLength(2);
    store = await createCheckpointStore<{ windows: number[] }>({ dir, name: 'window' });
    expect(await store.read()).toMatchObject({ offset: 500, data: { windows: [5] } });
    expect(store.latestOffset).toBe(500);
  });

  it('checkpoint store should ignore a leftover temp file of an interrupted write', async () => {
    const store = await createCheckpointStore({ dir });
    await store.write({ offset: 10, data: 'good' });
    // What a crash between write and rename leaves behind: a newer temp file, here even a
    // complete one, which was never committed by its rename.
    const other = await tempDir('pulsegate-ckpt-other-');
    const otherStore = await createCheckpointStore({ dir: other.dir });
    await otherStore.write({ offset: 99, data: 'uncommitted' });
    const [otherFile] = (await readdir(other.dir)).filter((f) => f.endsWith('.ckpt'));
    await writeFile(join(dir, '.checkpoint-00000000000000000002.ckpt.tmp'), await readFile(join(other.dir, otherFile!)));
    await other.cleanup();
    const reopened = await createCheckpointStore({ dir });
    expect(await reopened.read()).toMatchObject({ offset: 10, data: 'good' });
    await reopened.write({ offset: 20, data: 'next' });
    expect((await readdir(dir)).some((f) => f.endsWith('.tmp'))).toBe(false);
    expect(await reopened.read()).toMatchObject({ offset: 20, data: 'next' });
  });

  it('checkpoint store should fall back to the previous checkpoint when the newest is damaged', async () => {
    const store = await createCheckpointStore({ dir });
    await store.write({ offset: 10, data: { n: 1 } });
    await store.write({ offset: 20, data: { n: 2 } });
    const files = (await readdir(dir)).filter((f) => f.endsWith('.ckpt')).sort();
    const newest = join(dir, files[1]!);
    const text = await readFile(newest, 'utf8');
    await writeFile(newest, text.replace('"n":2', '"n":3'));
    expect(await store.read()).toMatchObject({ offset: 10, data: { n: 1 } });
    expect(store.unreadable).toHaveLength(1);
    expect(store.unreadable[0]).toContain('CRC');
    await writeFile(newest, text.slice(0, 10));
    expect(await store.read()).toMatchObject({ offset: 10 });
  });

  it('checkpoint store should serialise concurrent writes', async () => {
    const store = await createCheckpointStore({ dir });
    await Promise.all([1, 2, 3, 4].map((i) => store.write({ offset: i, data: i })));
    expect(await store.read()).toMatchObject({ offset: 4, data: 4 });
  });

  it('checkpoint store should reject a negative offset with GW_ERR_CHECKPOINT', async () => {
    const store = await createCheckpointStore({ dir });
    await expect(store.write({ offset: -1, data: null })).rejects.toMatchObject({ code: 'GW_ERR_CHECKPOINT' });
  });

  it('checkpoint store should keep capturedNext (the log offset at the capture), and read a checkpoint without it as without it', async () => {
    const store = await createCheckpointStore({ dir });
    await store.write({ offset: 7, data: 1, capturedNext: 9 });
    expect(await createCheckpointStore({ dir }).read()).toMatchObject({ offset: 7, data: 1, capturedNext: 9 });
    await store.write({ offset: 8, data: 2 });
    const plain = await createCheckpointStore({ dir }).read();
    expect(plain).toMatchObject({ offset: 8, data: 2 });
    expect(plain).not.toHaveProperty('capturedNext');
    await expect(store.write({ offset: 8, data: 3, capturedNext: 7 })).rejects.toMatchObject({ code: 'GW_ERR_CHECKPOINT' });
  });
});

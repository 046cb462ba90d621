import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import { createCheckpointStore } from '../../../gateway/log/checkpoint-store.js';
import { createCursorKeeper, type CursorKeeper } from '../../../gateway/log/consumer-cursor.js';
import { tempDir, until } from './log-test-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
const keepers: CursorKeeper<unknown>[] = [];
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('pulsegate-cursor-'));
});
afterEach(async () => {
  for (const k of keepers.splice(0)) await k.stop();
  await cleanup();
});

function keeperAt(state: { offset: number }, clock: ManualClock, intervalMs: number): CursorKeeper<{ n: number }> {
  const k = createCursorKeeper<{ n: number }>({
    stateDir: dir,
    name: 'consumer-test',
    label: 'test cursor',
    fallback: 'starting over',
    snapshot: () => ({ offset: state.offset, data: { n: state.offset } }),
    intervalMs,
    clock,
    onWriteError: (err) => {
      throw err;
    },
  });
  keepers.push(k);
  return k;
}

describe('cursor keeper', () => {
  it('cursor keeper should write a cursor the throttle held back once the interval ends, so an idle reader is not left behind on disk', async () => {
    const clock = new ManualClock(1000);
    const state = { offset: 5 };
    const keeper = keeperAt(state, clock, 30);
    await keeper.persist();
    expect(keeper.savedOffset).toBe(5);
    // Handled more, then went idle: the throttle holds this write back, nothing else asks again.
    state.offset = 9;
    await keeper.persist();
    expect(keeper.savedOffset).toBe(5);
    await until(() => keeper.savedOffset === 9, 5000, 'the deferred cursor write');
    const onDisk = await createCheckpointStore({ dir, name: 'consumer-test' }).read();
    expect(onDisk).toMatchObject({ offset: 9, data: { n: 9 } });
  });

  it('cursor keeper should ignore a cursor ahead of the log and say why', async () => {
    const clock = new ManualClock(1000);
    const keeper = keeperAt({ offset: 50 }, clock, 0);
    await keeper.persist(true);
    expect(await keeper.load({ nextOffset: 60 })).toEqual({ offset: 50, data: { n: 50 } });
    expect(await keeper.load({ nextOffset: 40 })).toBeNull();
    expect(keeper.savedOffset).toBeNull();
  });
});

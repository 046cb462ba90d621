import { afterEach, describe, expect, it } from 'vitest';
import type { TailFn } from '../../../gateway/delivery/delivery-hub.js';
import { GatewayError } from '../../../gateway/errors.js';
import { sampleOr0 } from '../../helpers/metrics.js';
import { mulberry32 } from '../../helpers/random.js';
import { openSse } from '../../helpers/sse-client.js';
import { waitFor } from '../../helpers/wait.js';
import { randomAlert, startHub, type Hub } from './hub-harness.js';

let hub: Hub | null = null;
afterEach(async () => {
  await hub?.close();
  hub = null;
});

/** The real tail reader, whose live follow (the call with `types`) fails with a read error once, after `after` records. */
function failingOnce(after: number): (tail: TailFn) => TailFn {
  let failed = false;
  return (tail) => (from, o) => {
    if (failed || o.types === undefined) return tail(from, o);
    return (async function* () {
      let n = 0;
      for await (const item of tail(from, o)) {
        if (n++ === after) {
          failed = true;
          throw new GatewayError('GW_ERR_LOG_CORRUPT', 'injected read error');
        }
        yield item;
      }
    })();
  };
}

describe('SSE hub, log read errors', () => {
  it('closes the streams on a read error of its follower and follows again: a reconnecting client loses nothing', async () => {
    hub = await startHub({}, {}, failingOnce(3));
    const h = hub;
    const rand = mulberry32(77);
    await h.appendOther();
    const c = await openSse(h.url('/v1/streams/alerts'));
    const offsets: number[] = [];
    for (let i = 0; i < 10; i++) offsets.push(await h.appendAlert(randomAlert(rand, i)));
    await c.ended;
    await waitFor(async () => sampleOr0(await h.registry.metrics(), 'pulsegate_delivery_follow_failures_total') === 1, { what: 'the failure counted' });
    const got = c.events.filter((e) => e.event === 'alert').map((e) => Number(e.id));
    expect(got).toEqual(offsets.slice(0, 3));
    // The follow is back: the client resumes where it was and the live part works again.
    const again = await openSse(h.url('/v1/streams/alerts'), { 'last-event-id': String(got[got.length - 1]) });
    offsets.push(await h.appendAlert(randomAlert(rand, 99)));
    await waitFor(() => again.events.some((e) => Number(e.id) === offsets[offsets.length - 1]), { what: 'the resumed stream', timeoutMs: 10_000 });
    expect([...got, ...again.events.filter((e) => e.event === 'alert').map((e) => Number(e.id))]).toEqual(offsets);
    again.close();
  });
});

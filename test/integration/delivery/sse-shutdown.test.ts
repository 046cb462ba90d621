import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startHub, type Hub } from './hub-harness.js';

let hub: Hub | null = null;
afterEach(async () => {
  await hub?.close();
  hub = null;
});

/** One GET over a fresh connection: its status, or the network error that ended it. */
function get(url: string): Promise<{ status: number } | { error: string }> {
  return new Promise((resolve) => {
    const req = request(url, { headers: { accept: 'text/event-stream', connection: 'close' } }, (res) => {
      resolve({ status: res.statusCode ?? 0 });
      res.destroy();
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.end();
  });
}

describe('SSE at shutdown', () => {
  it('drops a stream request while the hub closes instead of answering it: an EventSource retries after a network error, never after a 503', async () => {
    hub = await startHub();
    // Open while the hub is open: a stream.
    expect(await get(hub.url('/v1/streams/alerts'))).toEqual({ status: 200 });
    await hub.hub.close();
    expect(hub.hub.closed).toBe(true);
    // The HTTP server is still up (it closes after the hub); the request gets no answer at all.
    const answer = await get(hub.url('/v1/streams/alerts'));
    expect(answer).toHaveProperty('error');
    expect((answer as { error: string }).error).toMatch(/ECONNRESET|socket hang up/);
  });
});

import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startTestGateway } from '../../helpers/gateway.js';

describe('HTTP at shutdown', () => {
  it('should close, not wait for, a connection whose request never finishes', { timeout: 20_000 }, async () => {
    const gw = await startTestGateway();
    const socket = connect(gw.ports.http, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    // Headers never ended: Node would hold this request open for its headersTimeout (60 s).
    socket.write('GET /v1/alerts HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => undefined);
    await gw.dispose();
    await closed;
    expect(socket.destroyed).toBe(true);
  });
});

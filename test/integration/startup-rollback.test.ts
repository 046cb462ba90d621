import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/config/load-config.js';
import { startGateway } from '../../gateway/main.js';

/** A port nothing listens on (taken from the kernel, then let go). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('startup rollback', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'pg-rollback-'));
  let blocker: Server | null = null;
  afterAll(async () => {
    await new Promise<void>((r) => (blocker === null ? r() : blocker.close(() => r())));
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('http.start failing (port in use) left the log, ingest and the lock open: all are closed, and a second start on the same data dir succeeds', async () => {
    blocker = createServer();
    await new Promise<void>((r) => blocker!.listen(0, '127.0.0.1', r));
    const busyPort = (blocker.address() as { port: number }).port;
    const mqttPort = await freePort();
    const config = (httpPort: number) =>
      loadConfig({ env: {}, overrides: { dataDir, logLevel: 'silent', mqtt: { port: mqttPort, host: '127.0.0.1', allowAnonymous: true }, http: { port: httpPort, host: '127.0.0.1' } } });
    await expect(startGateway(config(busyPort))).rejects.toThrow(/EADDRINUSE/);
    // Ingest had started before http: its listener is closed again.
    expect(await refused(mqttPort)).toBe(true);
    const gw = await startGateway(config(0));
    try {
      expect(gw.ports.mqtt).toBe(mqttPort);
    } finally {
      await gw.close();
    }
  });
});

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../gateway/config/load-config.js';
import { startGateway, type GatewayDeps, type GatewayHandle } from '../../gateway/main.js';

export interface TestGateway extends GatewayHandle {
  readonly dataDir: string;
  /** Closes the gateway and removes its data directory. */
  dispose(): Promise<void>;
}

/** Starts a real gateway in-process on free ports with a fresh data directory. */
export async function startTestGateway(
  overrides: Record<string, unknown> = {},
  dataDir = mkdtempSync(join(tmpdir(), 'pg-gw-')),
  deps: GatewayDeps = {},
): Promise<TestGateway> {
  const config = loadConfig({
    env: {},
    overrides: {
      dataDir,
      logLevel: 'warn',
      ...overrides,
      mqtt: { port: 0, host: '127.0.0.1', allowAnonymous: true, ...(overrides['mqtt'] as object | undefined) },
      http: { port: 0, host: '127.0.0.1', ...(overrides['http'] as object | undefined) },
    },
  });
  const gw = await startGateway(config, deps);
  return Object.assign(gw, {
    dataDir,
    async dispose() {
      await gw.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
}

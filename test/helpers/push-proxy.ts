import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import webpush from 'web-push';
import type { Clock } from '../../gateway/clock.js';
import { loadConfig } from '../../gateway/config/load-config.js';
import { startPushProxy, type PushProxy } from '../../gateway/push-proxy/push-proxy.js';
import type { VapidKeys } from '../../gateway/push-proxy/vapid-keys.js';
import { REPO_ROOT, spawnCli } from './child-gateway.js';
import type { TestPki } from './tls-certs.js';
import { waitForValue } from './wait.js';

export interface TestPushProxy extends PushProxy {
  readonly vapid: VapidKeys;
  readonly dataDir: string;
  post(body: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  get(path: string): Promise<{ status: number; body: Record<string, unknown> }>;
  del(id: string): Promise<{ status: number; body: Record<string, unknown> }>;
}

/** The push proxy in this process, on a free port, trusting the test CA for the push service. */
export async function startTestPushProxy(options: {
  gatewayUrl: string;
  pki: TestPki;
  pushProxy?: Record<string, unknown>;
  dataDir?: string;
  clock?: Clock;
  vapid?: VapidKeys;
}): Promise<TestPushProxy> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'pg-push-proxy-'));
  const vapid = options.vapid ?? webpush.generateVAPIDKeys();
  const config = loadConfig({
    env: {},
    overrides: {
      dataDir,
      pushProxy: { host: '127.0.0.1', port: 0, gatewayUrl: options.gatewayUrl, vapidSubject: 'mailto:ops@example.org', retryInitialMs: 20, retryMaxMs: 200, ...options.pushProxy },
    },
  });
  const proxy = await startPushProxy(config.pushProxy, {
    vapidKeys: vapid,
    logger: pino({ level: 'silent' }),
    pushAgent: new Agent({ ca: readFileSync(options.pki.ca.cert), keepAlive: true }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
  });
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${proxy.url}${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return Object.assign(Object.create(null) as object, proxy, {
    close: () => proxy.close(),
    sweep: () => proxy.sweep(),
    streamCount: () => proxy.streamCount(),
    vapid,
    dataDir,
    post: (body: unknown) => call('POST', '/v1/handoffs', body),
    get: (path: string) => call('GET', path),
    del: (id: string) => call('DELETE', `/v1/handoffs/${id}`),
  }) as TestPushProxy;
}

/** `pulsegate push-proxy --config FILE` as a child process, trusting the test CA (NODE_EXTRA_CA_CERTS). */
export async function startChildPushProxy(
  configFile: string,
  pki: TestPki,
  options: { timeoutMs?: number; execArgv?: readonly string[] } = {},
): Promise<{ child: ChildProcess; port: number; url: string; output: string[]; exited: Promise<number | null> }> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const spawned =
    options.execArgv === undefined
      ? spawnCli(['push-proxy', '--config', configFile], { NODE_EXTRA_CA_CERTS: pki.ca.cert })
      : spawnWithExecArgv(options.execArgv, ['push-proxy', '--config', configFile], { NODE_EXTRA_CA_CERTS: pki.ca.cert });
  const line = await waitForValue(
    () => {
      if (spawned.child.exitCode !== null) throw new Error(`push proxy exited with ${spawned.child.exitCode}:\n${spawned.output.join('\n')}`);
      return spawned.output.find((l) => l.includes('"push proxy ready"'));
    },
    (l) => l !== undefined,
    { timeoutMs, what: 'the push proxy ready line' },
  ).catch((err: unknown) => {
    spawned.child.kill('SIGKILL');
    throw err;
  });
  const port = (JSON.parse(line!) as { port: number }).port;
  return { ...spawned, port, url: `http://127.0.0.1:${port}` };
}

/** spawnCli with node options before the entry (e.g. --cpu-prof for the bench). */
function spawnWithExecArgv(execArgv: readonly string[], args: string[], env: Record<string, string>): ReturnType<typeof spawnCli> {
  const child = spawn(process.execPath, [...execArgv, '--import', 'tsx', 'gateway/cli.ts', ...args], { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  for (const s of [child.stdout!, child.stderr!]) createInterface({ input: s }).on('line', (l) => output.push(l));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output, exited };
}

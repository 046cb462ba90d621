import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ChildGateway {
  readonly child: ChildProcess;
  readonly ports: { mqtt: number; http: number; ws: number | null };
  /** Every line the process printed (stdout and stderr). */
  readonly output: string[];
  readonly exited: Promise<number | null>;
}

/** Runs `pulsegate <args>` as a child process, as a user would, with `tsx` as the TS loader. */
export function spawnCli(args: string[], env: Record<string, string> = {}): { child: ChildProcess; output: string[]; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/cli.ts', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  for (const s of [child.stdout!, child.stderr!]) createInterface({ input: s }).on('line', (l) => output.push(l));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output, exited };
}

/** Starts the gateway CLI on free ports and waits for its "pulsegate ready" log line. */
export async function startChildGateway(dataDir: string, env: Record<string, string> = {}, timeoutMs = 30_000): Promise<ChildGateway> {
  const spawned = spawnCli(['start'], {
    PULSEGATE_MQTT_PORT: '0',
    PULSEGATE_HTTP_PORT: '0',
    PULSEGATE_DATA_DIR: dataDir,
    PULSEGATE_ALLOW_ANONYMOUS: 'true',
    PULSEGATE_LOG_LEVEL: 'info',
    ...env,
  });
  return waitUntilReady(spawned, timeoutMs);
}

/** Waits for a spawned gateway's "pulsegate ready" log line and reads its bound ports from it. */
export async function waitUntilReady(spawned: ReturnType<typeof spawnCli>, timeoutMs: number): Promise<ChildGateway> {
  const { child, output, exited } = spawned;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const line of output) {
      if (!line.includes('"pulsegate ready"')) continue;
      const entry = JSON.parse(line) as { mqtt: number; http: number; ws: number | null };
      return { child, output, exited, ports: { mqtt: entry.mqtt, http: entry.http, ws: entry.ws } };
    }
    if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode}:\n${output.join('\n')}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`gateway not ready within ${timeoutMs} ms:\n${output.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

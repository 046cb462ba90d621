import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A real `influxd` (InfluxDB 1.x) child process on free loopback ports, with its data in a temp dir. */
export interface InfluxdHandle {
  /** Base URL, e.g. http://127.0.0.1:41234 (no database path). */
  readonly url: string;
  readonly port: number;
  /** Graceful stop (SIGTERM, SIGKILL after a grace period) and removal of the temp dir. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL (a crash or an outage); data and ports are kept for restart(). */
  kill(): Promise<void>;
  /** Stops the process if it runs, then starts it again on the same ports with the same data. */
  restart(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;
const STDERR_TAIL_BYTES = 8192;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function configText(dir: string, httpPort: number, rpcPort: number): string {
  // Every service that is not needed is off: no usage reporting, no _internal monitor database,
  // no HTTP request log (it would flood the test output).
  return `reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"

[meta]
  dir = "${join(dir, 'meta')}"

[data]
  dir = "${join(dir, 'data')}"
  wal-dir = "${join(dir, 'wal')}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:${httpPort}"
  log-enabled = false

[logging]
  level = "warn"

[continuous_queries]
  enabled = false
`;
}

async function pingOnce(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(1000) });
    return res.status === 204;
  } catch {
    // Not listening yet: the caller polls again.
    return false;
  }
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export async function startInfluxd(): Promise<InfluxdHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'pulsegate-influxd-'));
  const httpPort = await freePort();
  let rpcPort = await freePort();
  while (rpcPort === httpPort) rpcPort = await freePort();
  const configPath = join(dir, 'influxdb.conf');
  await writeFile(configPath, configText(dir, httpPort, rpcPort));
  const url = `http://127.0.0.1:${httpPort}`;

  let child: ChildProcess | null = null;
  let stderrTail = '';
  let stopped = false;

  // A test process that dies without calling stop() must not leave influxd behind.
  const onExit = (): void => {
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch (err) {
        // Already gone; nothing else to do at process exit.
        void err;
      }
    }
  };
  process.once('exit', onExit);

  async function launch(): Promise<void> {
    stderrTail = '';
    const proc = spawn('influxd', ['run', '-config', configPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, INFLUXDB_REPORTING_DISABLED: 'true' },
    });
    child = proc;
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
    });
    const spawnError = new Promise<Error>((resolve) => proc.once('error', resolve));
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`influxd exited during startup (${proc.exitCode ?? proc.signalCode}):\n${stderrTail}`);
      }
      const failed = await Promise.race([spawnError, new Promise<null>((r) => setTimeout(() => r(null), 100))]);
      if (failed !== null) throw new Error(`influxd could not be started: ${failed.message}`);
      if (await pingOnce(url)) return;
    }
    proc.kill('SIGKILL');
    throw new Error(`influxd did not answer /ping within ${STARTUP_TIMEOUT_MS} ms:\n${stderrTail}`);
  }

  async function terminate(signal: NodeJS.Signals): Promise<void> {
    const proc = child;
    if (proc === null || proc.pid === undefined) return;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill(signal);
      if (!(await waitForExit(proc, STOP_GRACE_MS))) {
        proc.kill('SIGKILL');
        await waitForExit(proc, STOP_GRACE_MS);
      }
    }
    child = null;
  }

  try {
    await launch();
  } catch (err) {
    await terminate('SIGKILL');
    process.removeListener('exit', onExit);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    url,
    port: httpPort,
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate('SIGTERM');
      process.removeListener('exit', onExit);
      await rm(dir, { recursive: true, force: true });
    },
    async kill() {
      await terminate('SIGKILL');
    },
    async restart() {
      if (stopped) throw new Error('influxd was stopped for good; start a new one');
      await terminate('SIGTERM');
      await launch();
    },
  };
}

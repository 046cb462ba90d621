/**
 * Child processes of the harness: spawning (TypeScript through tsx), JSON lines on stdout, IPC
 * requests, /proc readings (peak RSS, CPU time) and stopping by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BENCH_DIR = join(ROOT, 'bench');

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ); 100 on every Linux that Node supports. */
const USER_HZ = 100;

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Every stdout line parsed as JSON (non-JSON lines are kept as {text}). */
  readonly lines: Record<string, unknown>[];
  stderrTail(): string;
  /** Resolves with the first line (past or future) matching `pred`; rejects on exit or timeout. */
  waitLine(pred: (line: Record<string, unknown>) => boolean, timeoutMs: number): Promise<Record<string, unknown>>;
  request(msg: Record<string, unknown>, timeoutMs?: number): Promise<Record<string, unknown>>;
  readonly exited: Promise<number | null>;
  readonly hasExited: () => boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
  kill9(): Promise<void>;
}

export interface SpawnOptions {
  readonly execArgv?: readonly string[];
  readonly ipc?: boolean;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * How bench/<script> runs: `build` = plain node on the transpiled copy in bench/.build (see
 * build.ts; the default of the harness), `tsx` = straight from the TypeScript source.
 */
let runtime: 'tsx' | 'build' = 'tsx';
export function setRuntime(r: 'tsx' | 'build'): void {
  runtime = r;
}
export function getRuntime(): 'tsx' | 'build' {
  return runtime;
}

/**
 * CPU affinity of the systems under test and of the load generators (run.ts --cores N): a CPU
 * list for `taskset -c` each, or null (not pinned). Children are started under taskset, so every
 * thread they make inherits the mask. Benches that start their own children are not pinned.
 */
export interface CpuAffinity {
  readonly sut: string | null;
  readonly load: string | null;
}
const SUT_CHILDREN = new Set(['sink', 'aedes', 'mosquitto', 'pulsegate']);
const LOAD_CHILDREN = new Set(['publisher', 'probe', 'subscriber']);
let affinity: CpuAffinity = { sut: null, load: null };
export function setCpuAffinity(a: CpuAffinity): void {
  affinity = a;
}

/** `file args` as spawned for the child `name`: under `taskset -c <list>` when its role is pinned. */
function pinned(name: string, file: string, args: readonly string[]): [string, string[]] {
  const list = SUT_CHILDREN.has(name) ? affinity.sut : LOAD_CHILDREN.has(name) ? affinity.load : null;
  return list === null ? [file, [...args]] : ['taskset', ['-c', list, file, ...args]];
}

/** Runs bench/<script> (TypeScript, or its transpiled copy) in its own node process. */
export function spawnTs(name: string, script: string, args: readonly string[], options: SpawnOptions = {}): Child {
  const entry =
    runtime === 'build' ? [join(BENCH_DIR, '.build', 'bench', script.replace(/\.ts$/, '.js'))] : ['--import', 'tsx', join(BENCH_DIR, script)];
  const argv = [...(options.execArgv ?? []), ...entry, ...args];
  const [file, fileArgs] = pinned(name, process.execPath, argv);
  return wrap(name, spawn(file, fileArgs, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe', ...(options.ipc ? (['ipc'] as const) : [])], env: options.env ?? process.env }));
}

export function spawnBinary(name: string, file: string, args: readonly string[]): Child {
  const [command, commandArgs] = pinned(name, file, args);
  return wrap(name, spawn(command, commandArgs, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
}

function wrap(name: string, proc: ChildProcess): Child {
  if (proc.pid === undefined) throw new Error(`${name}: could not be started`);
  const lines: Record<string, unknown>[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  let stderr = '';
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code, signal) => {
      exitCode = code ?? (signal !== null ? -1 : null);
      resolve(exitCode);
    }),
  );
  proc.on('error', () => undefined);
  createInterface({ input: proc.stdout! }).on('line', (text) => {
    let line: Record<string, unknown>;
    try {
      const v: unknown = JSON.parse(text);
      line = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : { text };
    } catch {
      line = { text };
    }
    lines.push(line);
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]!;
      if (w.pred(line)) {
        waiters.splice(i, 1);
        w.resolve(line);
      }
    }
  });
  proc.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-8000);
  });
  const pending = new Map<number, (m: Record<string, unknown>) => void>();
  let nextId = 1;
  proc.on('message', (m: unknown) => {
    const msg = m as Record<string, unknown>;
    const id = typeof msg['id'] === 'number' ? msg['id'] : -1;
    const r = pending.get(id);
    if (r) {
      pending.delete(id);
      r(msg);
    }
  });
  const hasExited = (): boolean => exitCode !== undefined;
  const child: Child = {
    name,
    proc,
    pid: proc.pid,
    lines,
    stderrTail: () => stderr.trim().split('\n').slice(-12).join('\n'),
    exited,
    hasExited,
    waitLine(pred, timeoutMs) {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`${name}: no expected output within ${timeoutMs} ms${stderr ? `\n${child.stderrTail()}` : ''}`));
        }, timeoutMs);
        const w = {
          pred,
          resolve: (l: Record<string, unknown>) => {
            clearTimeout(timer);
            resolve(l);
          },
        };
        waiters.push(w);
        void exited.then((code) => {
          setTimeout(() => {
            // Let the last lines of stdout arrive before giving up on them.
            const i = waiters.indexOf(w);
            if (i < 0) return;
            waiters.splice(i, 1);
            clearTimeout(timer);
            reject(new Error(`${name} exited (code ${code})${stderr ? `:\n${child.stderrTail()}` : ''}`));
          }, 50);
        });
      });
    },
    request(msg, timeoutMs = 5000) {
      if (!proc.connected) return Promise.reject(new Error(`${name}: no IPC channel`));
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name}: no answer to ${JSON.stringify(msg)} within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, (m) => {
          clearTimeout(timer);
          resolve(m);
        });
        proc.send({ ...msg, id });
      });
    },
    async stop(graceMs = 5000) {
      if (hasExited()) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!hasExited()) proc.kill('SIGKILL');
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
    async kill9() {
      if (hasExited()) return;
      proc.kill('SIGKILL');
      await exited;
    },
  };
  return child;
}

// ---- /proc -----------------------------------------------------------------------------------

/** utime + stime of a process in seconds, or null once it is gone. */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / USER_HZ;
  } catch {
    return null;
  }
}

function statusKb(pid: number, field: string): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Peak resident set size (VmHWM) in MB. */
export function peakRssMb(pid: number): number | null {
  const kb = statusKb(pid, 'VmHWM');
  return kb === null ? null : kb / 1024;
}

export function rssMb(pid: number): number | null {
  const kb = statusKb(pid, 'VmRSS');
  return kb === null ? null : kb / 1024;
}

// ---- network -------------------------------------------------------------------------------

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once 127.0.0.1:port accepts a TCP connection (polling), or rejects after timeoutMs. */
export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

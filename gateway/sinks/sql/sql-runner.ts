import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { GatewayError } from '../../errors.js';
import type { SqlAnswer, SqlQueryService } from '../types.js';
import type { SqlProcessReady, SqlProcessReply, SqlProcessRequest } from './sql-protocol.js';

/** Longest a new query process may take to load before its query fails (not counted in the time limit). */
const STARTUP_TIMEOUT_MS = 30_000;

export type { SqlAnswer, SqlQueryService } from '../types.js';

export const SQL_OUTCOMES = ['ok', 'invalid', 'timeout', 'aborted', 'error'] as const;
export type SqlOutcome = (typeof SQL_OUTCOMES)[number];

export function createSqlOutcomeCounter(registry: Registry | undefined): Counter<'outcome'> {
  const counter = new Counter({
    name: 'pulsegate_http_sql_queries_total',
    help: 'POST /v1/query queries by outcome (a timeout is a query stopped at http.sqlTimeoutMs)',
    labelNames: ['outcome'] as const,
    registers: registry === undefined ? [] : [registry],
  });
  for (const outcome of SQL_OUTCOMES) counter.labels(outcome).inc(0);
  return counter;
}

export interface SqlRunnerOptions {
  /** The embedded store's SQLite file. */
  readonly path: string;
  readonly timeoutMs: number;
  /** Query processes kept warm between queries (the query limiter bounds how many run at once). */
  readonly maxIdle: number;
  readonly registry?: Registry;
  readonly logger?: Logger;
}

interface QueryProcess {
  readonly child: ChildProcess;
  /** Resolves when the process has loaded; rejects when it exits first. */
  readonly ready: Promise<void>;
  /** The reply of the query running on it, or its death. */
  onReply: ((reply: SqlProcessReply) => void) | null;
  onExit: ((code: number | null, signal: NodeJS.Signals | null) => void) | null;
  exited: boolean;
}

/**
 * SQL over the embedded store, each query in a child process of its own read-only connection
 * (sql-process.ts). A query that runs past `timeoutMs`, or whose client hangs up, is stopped by
 * SIGKILL of its process: SQLite's step loop cannot be interrupted from JavaScript, and a
 * `WITH RECURSIVE` without end would otherwise burn a core forever. The gateway's event loop
 * only waits for a message.
 */
export function createSqlRunner(options: SqlRunnerOptions): SqlQueryService {
  const { path, timeoutMs, maxIdle, logger } = options;
  const outcomes = createSqlOutcomeCounter(options.registry);
  const idle: QueryProcess[] = [];
  const all = new Set<QueryProcess>();
  let nextId = 1;
  let closed = false;

  function spawnProcess(): QueryProcess {
    const child = forkQueryProcess(path);
    let loaded: () => void = () => undefined;
    let failed: (err: Error) => void = () => undefined;
    const ready = new Promise<void>((resolve, reject) => {
      loaded = resolve;
      failed = reject;
    });
    ready.catch(() => undefined);
    const qp: QueryProcess = { child, ready, onReply: null, onExit: null, exited: false };
    all.add(qp);
    child.on('message', (message: SqlProcessReply | SqlProcessReady) => {
      if ('ready' in message) loaded();
      else qp.onReply?.(message);
    });
    child.on('exit', (code, signal) => {
      failed(new GatewayError('GW_ERR_SINK_QUERY', `the SQL query process exited while loading (${signal ?? `code ${code}`})`));
      qp.exited = true;
      all.delete(qp);
      const i = idle.indexOf(qp);
      if (i >= 0) idle.splice(i, 1);
      qp.onExit?.(code, signal);
    });
    child.on('error', (err) => logger?.warn({ err }, 'SQL query process failed'));
    return qp;
  }

  function release(qp: QueryProcess): void {
    qp.onReply = null;
    qp.onExit = null;
    if (!closed && !qp.exited && idle.length < maxIdle) {
      qp.child.unref();
      idle.push(qp);
    } else qp.child.kill('SIGKILL');
  }

  return {
    language: 'sql',
    query(sql, { maxRows, signal }) {
      if (closed) return Promise.reject(new GatewayError('GW_ERR_SHUTTING_DOWN', 'the gateway is shutting down', { retryable: false }));
      if (signal?.aborted) return Promise.reject(signal.reason as Error);
      const qp = idle.pop() ?? spawnProcess();
      qp.child.ref();
      const request: SqlProcessRequest = { id: nextId++, sql, maxRows };
      return new Promise<SqlAnswer>((resolve, reject) => {
        let done = false;
        const finish = (outcome: SqlOutcome, err: Error | null, answer?: SqlAnswer, keep = false): void => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          outcomes.labels(outcome).inc();
          if (keep) release(qp);
          else {
            qp.onReply = null;
            qp.onExit = null;
            qp.child.kill('SIGKILL');
          }
          if (err !== null) reject(err);
          else resolve(answer!);
        };
        // Until the process has loaded, only the startup bound runs; the query's own time starts with its send.
        let timer: NodeJS.Timeout = setTimeout(() => {
          finish('error', new GatewayError('GW_ERR_SINK_UNAVAILABLE', `no SQL query process could start within ${STARTUP_TIMEOUT_MS} ms`, { retryable: true }));
        }, STARTUP_TIMEOUT_MS);
        const onAbort = (): void => finish('aborted', signal!.reason as Error);
        signal?.addEventListener('abort', onAbort, { once: true });
        qp.onReply = (reply) => {
          if (reply.id !== request.id) return;
          if (reply.ok) {
            finish('ok', null, { count: reply.count, truncated: reply.truncated, json: reply.json }, true);
            return;
          }
          const details = reply.position !== undefined ? { position: reply.position } : undefined;
          const err = new GatewayError(reply.code, reply.message, { retryable: reply.code === 'GW_ERR_SINK_UNAVAILABLE', ...(details ? { details } : {}) });
          finish(reply.code === 'GW_ERR_QUERY_INVALID' ? 'invalid' : 'error', err, undefined, true);
        };
        qp.onExit = (code, sig) => {
          finish('error', new GatewayError('GW_ERR_SINK_QUERY', `the SQL query process exited (${sig ?? `code ${code}`})`));
        };
        if (qp.exited) {
          qp.onExit(null, null);
          return;
        }
        qp.ready.then(
          () => {
            if (done) return;
            clearTimeout(timer);
            timer = setTimeout(() => {
              finish('timeout', new GatewayError('GW_ERR_QUERY_TIMEOUT', `the query ran longer than ${timeoutMs} ms (http.sqlTimeoutMs) and was stopped`, { details: { timeoutMs } }));
            }, timeoutMs);
            qp.child.send(request, (err) => {
              if (err) finish('error', new GatewayError('GW_ERR_SINK_QUERY', `the SQL query process is gone: ${err.message}`));
            });
          },
          (err: Error) => finish('error', err),
        );
      });
    },
    async close() {
      closed = true;
      const exits = [...all].map((qp) => new Promise<void>((resolve) => (qp.exited ? resolve() : qp.child.once('exit', () => resolve()))));
      for (const qp of all) {
        // An idle process is unref'd; its exit must still be waited for, or a shutdown waiting on
        // nothing else would end the process here (before the gateway's last steps).
        qp.child.ref();
        qp.child.kill('SIGKILL');
      }
      idle.length = 0;
      await Promise.all(exits);
    },
  };
}

/** The compiled `sql-process.js` next to this module (dist/), or the TypeScript source with tsx's loader. */
function forkQueryProcess(path: string): ChildProcess {
  const compiled = new URL('./sql-process.js', import.meta.url);
  const stdio: ['ignore', 'ignore', 'inherit', 'ipc'] = ['ignore', 'ignore', 'inherit', 'ipc'];
  if (existsSync(fileURLToPath(compiled))) return fork(fileURLToPath(compiled), [path], { stdio, serialization: 'json' });
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const source = fileURLToPath(new URL('./sql-process.ts', import.meta.url));
  return fork(source, [path], { stdio, serialization: 'json', execArgv: ['--import', tsx] });
}

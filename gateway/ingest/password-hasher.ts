import { Worker } from 'node:worker_threads';
import { GatewayError } from '../errors.js';

/**
 * Password hashing (scrypt) on dedicated worker threads.
 *
 * Why not `crypto.scrypt`: it runs on libuv's thread pool (4 threads by default), the same pool
 * that runs the message log's writes and fdatasync. A flood of wrong-password CONNECTs then
 * queues every log commit behind ~35 ms hashes, and every honest device's PUBACK waits. Here
 * each worker runs `scryptSync` on its own thread, outside that pool, one hash at a time; the
 * number of workers bounds the CPU spent on logins, and the queue in front of them is bounded:
 * past `maxQueued` a hash is refused at once (policy "refuse", GW_ERR_AUTH_BUSY), which the
 * broker answers with CONNACK 3 (server unavailable).
 */
export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

export interface PasswordHasher {
  /** Rejects with GW_ERR_AUTH_BUSY when `maxQueued` hashes already wait. */
  scrypt(secret: Buffer, salt: Buffer, keylen: number, params: ScryptParams): Promise<Buffer>;
  readonly stats: {
    /** Hashes computed on the worker threads since start. */
    readonly completed: number;
    /** Hashes refused because the queue was full. */
    readonly refused: number;
    readonly queued: number;
    readonly running: number;
    readonly workers: number;
  };
  /** Idempotent: stops the workers; hashes still waiting are rejected. */
  close(): Promise<void>;
}

export interface PasswordHasherOptions {
  readonly workers: number;
  readonly maxQueued: number;
  /** Called on the main thread for each hash a worker returned. */
  readonly onHashed?: () => void;
}

interface Job {
  readonly secret: Buffer;
  readonly salt: Buffer;
  readonly keylen: number;
  readonly params: ScryptParams;
  readonly resolve: (key: Buffer) => void;
  readonly reject: (err: Error) => void;
}

interface Slot {
  worker: Worker | null;
  job: Job | null;
}

// Plain CommonJS evaluated in the worker: nothing to compile or resolve, so it runs the same
// under tsx, vitest and the built package. scryptSync blocks this worker's thread only.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { scryptSync } = require('node:crypto');
parentPort.on('message', (m) => {
  try {
    const key = scryptSync(m.secret, m.salt, m.keylen, { N: m.N, r: m.r, p: m.p, maxmem: 256 * m.N * m.r + 1048576 });
    parentPort.postMessage({ key: new Uint8Array(key) });
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
  }
});
`;

export function createPasswordHasher(options: PasswordHasherOptions): PasswordHasher {
  const slots: Slot[] = Array.from({ length: Math.max(1, options.workers) }, () => ({ worker: null, job: null }));
  const queue: Job[] = [];
  const stats = { completed: 0, refused: 0, queued: 0, running: 0, workers: slots.length };
  let closed = false;

  function spawn(slot: Slot): Worker {
    const worker = new Worker(WORKER_SOURCE, { eval: true, name: 'pulsegate-password-hasher' });
    // The gateway's servers keep the process alive; an idle hasher must not.
    worker.unref();
    worker.on('message', (m: { key?: Uint8Array; error?: string }) => {
      const job = slot.job;
      slot.job = null;
      stats.running--;
      if (job !== null) {
        if (m.key !== undefined) {
          stats.completed++;
          options.onHashed?.();
          job.resolve(Buffer.from(m.key.buffer, m.key.byteOffset, m.key.byteLength));
        } else job.reject(new Error(`scrypt failed: ${m.error ?? 'unknown error'}`));
      }
      next(slot);
    });
    // A worker that dies fails its one job; the slot gets a fresh worker for the next.
    const lost = (err: Error): void => {
      if (slot.worker !== worker) return;
      slot.worker = null;
      const job = slot.job;
      slot.job = null;
      if (job !== null) {
        stats.running--;
        job.reject(err);
      }
      if (!closed) next(slot);
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`password hasher worker exited (code ${code})`)));
    return worker;
  }

  function next(slot: Slot): void {
    if (closed || slot.job !== null) return;
    const job = queue.shift();
    if (job === undefined) return;
    stats.queued = queue.length;
    slot.worker ??= spawn(slot);
    slot.job = job;
    stats.running++;
    // Exact copies: cloning a view of Node's shared Buffer pool would copy the whole pool slab.
    slot.worker.postMessage({ secret: new Uint8Array(job.secret), salt: new Uint8Array(job.salt), keylen: job.keylen, N: job.params.N, r: job.params.r, p: job.params.p });
  }

  return {
    stats,
    scrypt(secret, salt, keylen, params) {
      if (closed) return Promise.reject(new GatewayError('GW_ERR_SHUTTING_DOWN', 'password hasher closed'));
      const idle = slots.find((s) => s.job === null);
      if (idle === undefined && queue.length >= options.maxQueued) {
        stats.refused++;
        return Promise.reject(new GatewayError('GW_ERR_AUTH_BUSY', `${queue.length} password checks already wait (mqtt.auth.maxPendingLogins)`, { retryable: true }));
      }
      return new Promise<Buffer>((resolve, reject) => {
        queue.push({ secret, salt, keylen, params, resolve, reject });
        stats.queued = queue.length;
        if (idle !== undefined) next(idle);
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const job of queue.splice(0)) job.reject(new GatewayError('GW_ERR_SHUTTING_DOWN', 'password hasher closed'));
      stats.queued = 0;
      await Promise.all(
        slots.map(async (slot) => {
          const w = slot.worker;
          slot.worker = null;
          const job = slot.job;
          slot.job = null;
          if (job !== null) {
            stats.running--;
            job.reject(new GatewayError('GW_ERR_SHUTTING_DOWN', 'password hasher closed'));
          }
          if (w !== null) await w.terminate();
        }),
      );
    },
  };
}

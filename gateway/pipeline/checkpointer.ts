import type { Logger } from 'pino';
import type { CheckpointStore } from '../log/checkpoint-store.js';
import type { ReadingPipeline } from './reading-pipeline.js';

/**
 * Checkpoint capture: batch contents and the state of every stage are captured in the same
 * synchronous step, so the checkpoint covers exactly the readings below its offset; it is
 * written once those batches are durable.
 */
export interface CheckpointerOptions {
  readonly pipeline: Pick<ReadingPipeline, 'checkpoint'>;
  /** The sink batcher: flush() appends what is pending and settles once it is durable. */
  readonly batcher: { flush(): Promise<unknown> };
  readonly store: Pick<CheckpointStore, 'write'>;
  /**
   * The log: a checkpoint is written only once every record appended before its capture is
   * durable (alert and window records too, not only the batches), so no state it holds can be
   * ahead of the log after a crash.
   */
  readonly log?: { readonly nextOffset: number; whenDurable(offset: number): Promise<unknown> };
  readonly logger: Logger;
}

export interface Checkpointer {
  /**
   * Captures and writes one checkpoint. `afterCapture` runs between the capture and the write
   * (shutdown emits half-filled windows there). Rejects when the batches or the file fail.
   */
  write(afterCapture?: () => Promise<unknown>): Promise<void>;
  /** The periodic checkpoint: one at a time (skipped while one runs); a failure is logged. */
  run(): void;
  /** Settles when the periodic checkpoint in progress, if any, has. */
  idle(): Promise<void>;
}

export function createCheckpointer(options: CheckpointerOptions): Checkpointer {
  const { pipeline, batcher, store, logger } = options;
  let running: Promise<void> | null = null;
  async function write(afterCapture?: () => Promise<unknown>): Promise<void> {
    const durable = batcher.flush();
    const last = options.log === undefined ? -1 : options.log.nextOffset - 1;
    const state = pipeline.checkpoint();
    await afterCapture?.();
    await durable;
    if (last >= 0) await options.log!.whenDurable(last);
    // The transitions and windows the stages appended before the capture are in the state, even
    // those above its offset; a restart primes the sender logs from here (senderLogsPrimeFrom).
    await store.write(options.log === undefined ? state : { ...state, capturedNext: last + 1 });
  }
  return {
    write,
    run() {
      if (running !== null) return;
      running = write()
        .catch((err: unknown) => logger.error({ err }, 'checkpoint failed'))
        .finally(() => {
          running = null;
        });
    },
    async idle() {
      await running;
    },
  };
}

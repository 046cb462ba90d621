import type { Logger } from 'pino';

/**
 * Waits, up to `deadlineMs`, for the store's outbox to deliver what is pending (shutdown: while
 * the store answers); whatever is left stays in the log and is resent at the next start.
 * Returns the records left.
 */
export async function drainOutbox(outbox: { drain(deadlineMs: number): Promise<number> }, deadlineMs: number, logger: Logger): Promise<number> {
  const left = await outbox.drain(deadlineMs);
  if (left > 0) logger.warn({ pending: left }, 'store batches left in the log; they are resent at the next start');
  return left;
}

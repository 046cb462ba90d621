import type { Logger } from 'pino';

/**
 * Waits, up to `deadlineMs`, for the store's outbox to deliver what is pending (shutdown: while
 * the store answers); whatever is left stays in the log and is resent at the next start.
 * Returns the records left.
 */
export async function drainOutbox(outbox: { readonly pending: number }, deadlineMs: number, logger: Logger, pollMs = 20): Promise<number> {
  // The outbox has no drain of its own yet: its pending count is polled.
  const until = Date.now() + deadlineMs;
  while (outbox.pending > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, pollMs));
  if (outbox.pending > 0) logger.warn({ pending: outbox.pending }, 'store batches left in the log; they are resent at the next start');
  return outbox.pending;
}

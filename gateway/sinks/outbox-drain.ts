/**
 * Waits, up to `deadlineMs`, for the store's outbox to deliver what is pending (shutdown: while
 * the store answers); whatever is left stays in the log and is resent at the next start.
 * Returns the records left.
 */
export async function drainOutbox(outbox: { readonly pending: number }, deadlineMs: number, pollMs = 20): Promise<number> {
  const until = Date.now() + deadlineMs;
  while (outbox.pending > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, pollMs));
  return outbox.pending;
}

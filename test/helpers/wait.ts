/** How tests wait: on a condition, polled with a deadline; never a fixed sleep standing in for one. */

export interface WaitOptions {
  /** Default 10 000. */
  readonly timeoutMs?: number;
  /** Poll interval. Default 10. */
  readonly intervalMs?: number;
  /** Named in the timeout error. */
  readonly what?: string;
}

const tick = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `cond()` is true; throws when `timeoutMs` passes first. */
export async function waitFor(cond: () => boolean | Promise<boolean>, options: WaitOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${options.what ?? 'a condition'}`);
    await tick(options.intervalMs ?? 10);
  }
}

/** Polls `fn` until `ok(value)`; returns that value, or throws with the last one at the deadline. */
export async function waitForValue<T>(fn: () => T | Promise<T>, ok: (v: T) => boolean, options: WaitOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await fn();
    if (ok(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${options.what ?? 'a condition'}; last value: ${JSON.stringify(last)}`);
    }
    await tick(options.intervalMs ?? 50);
  }
}

/**
 * A bounded observation window for a negative assertion ("nothing happens within `ms`"): the
 * only place a test waits for time itself. Passing it proves only that nothing happened that soon,
 * so the caller names the window in a comment.
 */
export function observe(ms: number): Promise<void> {
  return tick(ms);
}

/** Injected time source, so windows, watermarks, retries and schedules are testable without sleeping. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

/**
 * The wall clock, read once per run of synchronous work: the first now() of a run reads
 * Date.now(), and the reading is forgotten at the next microtask checkpoint (when the run ends,
 * before any timer, I/O callback or awaited continuation runs). Every publish of one socket read
 * gets the time of that read. Here Date.now() costs ~120 ns (kvm-clock), and a QoS 0 publish
 * asked for the time four or five times on its way to the log and the windows; that was about
 * 4 % of the ingest thread. A run never waits for time to pass (nothing spins on now()), so the
 * reading is at most as old as the run is long.
 */
export const systemClock: Clock = { now: tickNow };

let tickTime = 0;
let tickValid = false;

function forgetTick(): void {
  tickValid = false;
}

function tickNow(): number {
  if (!tickValid) {
    tickTime = Date.now();
    tickValid = true;
    queueMicrotask(forgetTick);
  }
  return tickTime;
}

/** A clock that moves only when told to; for tests. */
export class ManualClock implements Clock {
  constructor(private current = 0) {}
  now(): number {
    return this.current;
  }
  set(ms: number): void {
    this.current = ms;
  }
  advance(ms: number): void {
    this.current += ms;
  }
}

import type { Clock } from '../clock.js';
import { GatewayError } from '../errors.js';

/** Outcome of a CONNECT's authentication; the `result` label of pulsegate_mqtt_auth_total. */
export const AUTH_RESULTS = [
  'ok',
  /** Unknown username or wrong secret (the two are indistinguishable on purpose). */
  'bad_credentials',
  /** Too many failed or concurrent attempts for this username or address: refused without hashing. */
  'throttled',
  /** The password hasher's queue is full (mqtt.auth.maxPendingLogins). */
  'busy',
  /** The client id is not bound to the username, or an anonymous client uses a device's client id (mqtt.clientIdPolicy). */
  'client_id_rejected',
  /** No username (or no credentials file) while mqtt.allowAnonymous is false. */
  'not_authorized',
  /** The password check itself failed (logged). */
  'error',
] as const;
export type AuthResult = (typeof AUTH_RESULTS)[number];

export interface LoginGuardOptions {
  /** Failed (or still running) attempts per username within the window before it is locked out. */
  readonly maxFailuresPerUsername: number;
  /** The same per remote address. */
  readonly maxFailuresPerIp: number;
  readonly failureWindowMs: number;
  /** First lockout; each further lockout of the same key doubles it, up to maxLockoutMs. */
  readonly lockoutMs: number;
  readonly maxLockoutMs: number;
  /** Usernames and addresses tracked (each); past it the least recently failed are forgotten. */
  readonly maxTracked: number;
  readonly clock: Clock;
}

export interface LoginGuard {
  /**
   * Runs `verify` unless `username` or `ip` is throttled. Failures count against both; a
   * success clears the username's record (not the address's: one good login from an address
   * must not wipe the failures of the others it tries). Rejects when `verify` fails for a
   * reason other than a full hasher queue ("busy"); the attempt is then not counted as a failure.
   */
  attempt(username: string, ip: string | undefined, verify: () => Promise<boolean>): Promise<'ok' | 'bad_credentials' | 'throttled' | 'busy'>;
  readonly tracked: { readonly usernames: number; readonly ips: number };
}

interface Entry {
  pending: number;
  failures: number;
  windowStart: number;
  lockedUntil: number;
  lockouts: number;
}

/**
 * Failed-login records per key. Bounded: a Map in least-recently-failed order (an entry is moved
 * to the end when it fails); past `maxTracked`, the oldest entry is dropped (policy "forget
 * oldest"), which at worst ends one key's lockout early.
 */
class FailureTracker {
  private readonly entries = new Map<string, Entry>();
  constructor(
    private readonly max: number,
    private readonly o: LoginGuardOptions,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  blocked(key: string, now: number): boolean {
    const e = this.entries.get(key);
    if (e === undefined) return false;
    if (now < e.lockedUntil) return true;
    if (now - e.windowStart >= this.o.failureWindowMs) {
      e.failures = 0;
      e.windowStart = now;
      // A whole quiet window after the last lockout forgets the escalation.
      if (now - e.lockedUntil >= this.o.failureWindowMs) e.lockouts = 0;
      if (e.pending === 0 && e.lockouts === 0) {
        this.entries.delete(key);
        return false;
      }
    }
    return e.pending + e.failures >= this.max;
  }

  begin(key: string, now: number): void {
    let e = this.entries.get(key);
    if (e === undefined) {
      if (this.entries.size >= this.o.maxTracked) this.entries.delete(this.entries.keys().next().value!);
      e = { pending: 0, failures: 0, windowStart: now, lockedUntil: 0, lockouts: 0 };
      this.entries.set(key, e);
    }
    e.pending++;
  }

  end(key: string, now: number, failed: boolean): void {
    const e = this.entries.get(key);
    if (e === undefined) return; // forgotten meanwhile
    e.pending = Math.max(0, e.pending - 1);
    if (!failed) return;
    e.failures++;
    this.entries.delete(key);
    this.entries.set(key, e);
    if (e.failures >= this.max) {
      e.lockedUntil = now + Math.min(this.o.maxLockoutMs, this.o.lockoutMs * 2 ** Math.min(e.lockouts, 30));
      e.lockouts++;
      e.failures = 0;
      e.windowStart = now;
    }
  }

  clear(key: string): void {
    const e = this.entries.get(key);
    if (e !== undefined && e.pending === 0) this.entries.delete(key);
    else if (e !== undefined) {
      e.failures = 0;
      e.lockouts = 0;
    }
  }
}

export function createLoginGuard(o: LoginGuardOptions): LoginGuard {
  const users = new FailureTracker(o.maxFailuresPerUsername, o);
  const ips = new FailureTracker(o.maxFailuresPerIp, o);
  return {
    tracked: {
      get usernames() {
        return users.size;
      },
      get ips() {
        return ips.size;
      },
    },
    async attempt(username, ip, verify) {
      const start = o.clock.now();
      if (users.blocked(username, start) || (ip !== undefined && ips.blocked(ip, start))) return 'throttled';
      users.begin(username, start);
      if (ip !== undefined) ips.begin(ip, start);
      let outcome: 'ok' | 'bad_credentials';
      try {
        outcome = (await verify()) ? 'ok' : 'bad_credentials';
      } catch (err) {
        const now = o.clock.now();
        users.end(username, now, false);
        if (ip !== undefined) ips.end(ip, now, false);
        if (err instanceof GatewayError && err.code === 'GW_ERR_AUTH_BUSY') return 'busy';
        throw err;
      }
      const now = o.clock.now();
      const failed = outcome === 'bad_credentials';
      users.end(username, now, failed);
      if (ip !== undefined) ips.end(ip, now, failed);
      if (outcome === 'ok') users.clear(username);
      return outcome;
    },
  };
}

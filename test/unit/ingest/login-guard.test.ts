import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../gateway/clock.js';
import { GatewayError } from '../../../gateway/errors.js';
import { createLoginGuard, type LoginGuardOptions } from '../../../gateway/ingest/login-guard.js';

const base = { maxFailuresPerUsername: 3, maxFailuresPerIp: 5, failureWindowMs: 60_000, lockoutMs: 1000, maxLockoutMs: 8000, maxTracked: 100 };
function guardWith(o: Partial<LoginGuardOptions> = {}) {
  const clock = new ManualClock(1_000_000);
  return { clock, guard: createLoginGuard({ ...base, ...o, clock }) };
}
const wrong = () => Promise.resolve(false);
const right = () => Promise.resolve(true);

describe('login guard', () => {
  it('should lock a username out after maxFailuresPerUsername failures, without running the check, and let it in after the lockout', async () => {
    const { clock, guard } = guardWith();
    for (let i = 0; i < 3; i++) expect(await guard.attempt('dev-a', '10.0.0.1', wrong)).toBe('bad_credentials');
    let checks = 0;
    const counted = () => (checks++, Promise.resolve(true));
    expect(await guard.attempt('dev-a', '10.0.0.2', counted)).toBe('throttled');
    expect(checks).toBe(0);
    expect(await guard.attempt('dev-b', '10.0.0.2', right)).toBe('ok'); // other usernames are not affected
    clock.advance(1000);
    expect(await guard.attempt('dev-a', '10.0.0.2', counted)).toBe('ok');
    expect(checks).toBe(1);
  });

  it('should double each further lockout up to maxLockoutMs, and clear the record on success', async () => {
    const { clock, guard } = guardWith({ maxFailuresPerIp: 1000 });
    /** Three failures, then how long until an attempt runs again (that attempt fails too). */
    const probe = async (): Promise<number> => {
      for (let i = 0; i < 3; i++) expect(await guard.attempt('dev-a', 'ip', wrong)).toBe('bad_credentials');
      let waited = 0;
      while ((await guard.attempt('dev-a', 'ip', wrong)) === 'throttled') {
        clock.advance(250);
        waited += 250;
      }
      return waited;
    };
    // After the probe (a failure) two more failures make three: each round is one lockout.
    expect(await probe()).toBe(1000);
    const second = await (async () => {
      for (let i = 0; i < 2; i++) expect(await guard.attempt('dev-a', 'ip', wrong)).toBe('bad_credentials');
      let waited = 0;
      while ((await guard.attempt('dev-a', 'ip', right)) === 'throttled') {
        clock.advance(250);
        waited += 250;
      }
      return waited;
    })();
    expect(second).toBe(2000);
    // The success above cleared the record: three fresh failures give the first lockout again.
    expect(await probe()).toBe(1000);
  });

  it('should count attempts still running against the limit, so a burst of concurrent attempts is not all checked', async () => {
    const { guard } = guardWith();
    const releases: (() => void)[] = [];
    const slow = () => new Promise<boolean>((resolve) => releases.push(() => resolve(false)));
    const running = [guard.attempt('dev-a', undefined, slow), guard.attempt('dev-a', undefined, slow), guard.attempt('dev-a', undefined, slow)];
    expect(await guard.attempt('dev-a', undefined, right)).toBe('throttled');
    for (const r of releases) r();
    expect(await Promise.all(running)).toEqual(['bad_credentials', 'bad_credentials', 'bad_credentials']);
  });

  it('should lock an address out after maxFailuresPerIp failures across usernames', async () => {
    const { guard } = guardWith();
    for (let i = 0; i < 5; i++) expect(await guard.attempt(`user-${i}`, '10.9.9.9', wrong)).toBe('bad_credentials');
    expect(await guard.attempt('user-new', '10.9.9.9', right)).toBe('throttled');
    expect(await guard.attempt('user-new', '10.9.9.8', right)).toBe('ok');
  });

  it('should not count a full hasher queue as a failed login', async () => {
    const { guard } = guardWith();
    const busy = () => Promise.reject(new GatewayError('GW_ERR_AUTH_BUSY', 'full'));
    for (let i = 0; i < 10; i++) expect(await guard.attempt('dev-a', 'ip', busy)).toBe('busy');
    expect(await guard.attempt('dev-a', 'ip', right)).toBe('ok');
  });

  it('should keep at most maxTracked usernames and addresses, forgetting the least recently failed', async () => {
    const { guard } = guardWith({ maxTracked: 10, maxFailuresPerIp: 1_000_000 });
    for (let i = 0; i < 1000; i++) await guard.attempt(`user-${i}`, `10.0.${i >> 8}.${i & 255}`, wrong);
    expect(guard.tracked.usernames).toBeLessThanOrEqual(10);
    expect(guard.tracked.ips).toBeLessThanOrEqual(10);
  });
});

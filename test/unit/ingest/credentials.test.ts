import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hashSecret, loadCredentials } from '../../../gateway/ingest/credentials.js';
import { createPasswordHasher, type PasswordHasher, type ScryptParams } from '../../../gateway/ingest/password-hasher.js';
import { clientIdRefusal } from '../../../gateway/ingest/session-binding.js';

const real = createPasswordHasher({ workers: 1, maxQueued: 16 });
afterAll(() => real.close());

/** The real worker hasher, recording what it is asked to hash. */
function recording(): { hasher: PasswordHasher; calls: { keylen: number; params: ScryptParams; saltLength: number }[] } {
  const calls: { keylen: number; params: ScryptParams; saltLength: number }[] = [];
  return {
    calls,
    hasher: {
      stats: real.stats,
      close: () => Promise.resolve(),
      scrypt(secret, salt, keylen, params) {
        calls.push({ keylen, params: { N: params.N, r: params.r, p: params.p }, saltLength: salt.length });
        return real.scrypt(secret, salt, keylen, params);
      },
    },
  };
}

async function store(usernames: string[], N = 16384): Promise<ReturnType<typeof loadCredentials>> {
  const file = join(mkdtempSync(join(tmpdir(), 'pg-cred-unit-')), 'devices.yaml');
  const lines = ['devices:'];
  for (const u of usernames) lines.push(`  - username: ${u}`, `    secret: "${await hashSecret(`secret-of-${u}`, N)}"`);
  writeFileSync(file, lines.join('\n') + '\n');
  return loadCredentials(file);
}

describe('credential store', () => {
  it('unknown usernames reveal themselves by timing: the unknown-user path runs the same hash (same N, r, p, key and salt length) as a wrong secret', async () => {
    const creds = await store(['dev-a', 'dev-b'], 4096);
    const wrong = recording();
    expect(await creds.verify('dev-a', Buffer.from('not-the-secret'), wrong.hasher)).toBe(false);
    const unknown = recording();
    expect(await creds.verify('nobody-here', Buffer.from('not-the-secret'), unknown.hasher)).toBe(false);
    expect(wrong.calls).toHaveLength(1);
    expect(unknown.calls).toEqual(wrong.calls);
    expect(unknown.calls[0]!.params).toEqual({ N: 4096, r: 8, p: 1 });
    const right = recording();
    expect(await creds.verify('dev-a', Buffer.from('secret-of-dev-a'), right.hasher)).toBe(true);
    expect(right.calls).toEqual(wrong.calls);
  });

  it('an unknown username never verifies, whatever secret it sends', async () => {
    const creds = await store(['dev-a'], 1024);
    for (let i = 0; i < 5; i++) expect(await creds.verify('ghost', randomBytes(12), real)).toBe(false);
    expect(await creds.verify('ghost', Buffer.alloc(0), real)).toBe(false);
  });

  it('should give each client id to the longest username it is <username> or <username>:<suffix> of', async () => {
    const creds = await store(['a', 'a:b', 'dev-7'], 1024);
    expect(creds.ownerOfClientId('a')).toBe('a');
    expect(creds.ownerOfClientId('a:x')).toBe('a');
    expect(creds.ownerOfClientId('a:b')).toBe('a:b');
    expect(creds.ownerOfClientId('a:b:x')).toBe('a:b');
    expect(creds.ownerOfClientId('a:bc')).toBe('a');
    expect(creds.ownerOfClientId('dev-7:phone')).toBe('dev-7');
    expect(creds.ownerOfClientId('dev-7x')).toBeUndefined();
    expect(creds.ownerOfClientId('dev')).toBeUndefined();
    expect(creds.ownerOfClientId(':a')).toBeUndefined();
    expect(creds.ownerOfClientId('')).toBeUndefined();
    // A 64 KiB client id of separators is looked at for at most 128 characters.
    expect(creds.ownerOfClientId(':'.repeat(65_535))).toBeUndefined();
    expect(creds.ownerOfClientId(`a:${':'.repeat(65_000)}`)).toBe('a');
  });

  it('client id policy: a user gets only its own ids, an anonymous client none of them, and "any" binds nothing', async () => {
    const creds = await store(['a', 'a:b'], 1024);
    expect(clientIdRefusal('username-prefix', creds, 'a:phone', 'a')).toBeNull();
    expect(clientIdRefusal('username-prefix', creds, 'a:b', 'a')).toMatch(/not bound to "a"/);
    expect(clientIdRefusal('username-prefix', creds, 'a:b:1', 'a')).toMatch(/not bound/);
    expect(clientIdRefusal('username-prefix', creds, 'mqttjs_1', 'a')).toMatch(/not bound/);
    expect(clientIdRefusal('username-prefix', creds, 'a:b', undefined)).toMatch(/anonymous/);
    expect(clientIdRefusal('username-prefix', creds, 'visitor', undefined)).toBeNull();
    expect(clientIdRefusal('any', creds, 'a:b', 'a')).toBeNull();
    expect(clientIdRefusal('username-prefix', null, 'a', undefined)).toBeNull();
  });

  it('publish filters (mqtt.passthrough topics): none by default, a list of strings when given, and a wrong one listed with the others', async () => {
    const secret = await hashSecret('s', 1024);
    const dir = mkdtempSync(join(tmpdir(), 'pg-cred-unit-'));
    const good = join(dir, 'good.yaml');
    writeFileSync(good, `devices:\n  - username: a\n    secret: "${secret}"\n    publish: ["site/a/#"]\n  - username: b\n    secret: "${secret}"\n`);
    const creds = loadCredentials(good);
    expect(creds.publishFilters('a')).toEqual(['site/a/#']);
    expect(creds.publishFilters('b')).toEqual([]);
    expect(creds.publishFilters('nobody')).toEqual([]);
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, `devices:\n  - username: a\n    secret: "${secret}"\n    publish: "site/#"\n  - username: b\n    secret: "${secret}"\n    publish: ["", 3]\n  - username: "c d"\n    secret: "x"\n`);
    expect(() => loadCredentials(bad)).toThrow(/devices\[0\]\.publish: must be a list of topic filters\n\s+- devices\[1\]\.publish: must be a list of topic filters\n\s+- devices\[2\]\.username/);
  });
});

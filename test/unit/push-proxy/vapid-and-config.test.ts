import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { isGatewayError } from '../../../gateway/errors.js';
import { lockProxyDataDir } from '../../../gateway/push-proxy/proxy-lock.js';
import { startPushProxy } from '../../../gateway/push-proxy/push-proxy.js';
import { generateVapidKeyFile, readVapidKeyFile } from '../../../gateway/push-proxy/vapid-keys.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'pg-vapid-'));

describe('push proxy configuration', () => {
  it('should default pushProxy paths under the data directory and the hand-off TTL to 12 h', () => {
    const dir = tmp();
    const c = loadConfig({ env: {}, overrides: { dataDir: dir } });
    expect(c.pushProxy).toMatchObject({ dataDir: join(dir, 'push-proxy'), vapidKeyFile: join(dir, 'push-proxy', 'vapid.json'), handoffTtlMs: 43_200_000, vapidSubject: null });
  });

  it('should refuse a VAPID subject that is not a mailto: address', () => {
    expect(() => loadConfig({ env: {}, overrides: { pushProxy: { vapidSubject: 'ops@example.org' } } })).toThrow(/pushProxy\.vapidSubject: must match pattern/);
  });

  it('should refuse to start the proxy without a VAPID subject, listing every problem', async () => {
    const c = loadConfig({ env: {}, overrides: { dataDir: tmp(), pushProxy: { sweepSchedule: 'every minute' } } });
    const err = await startPushProxy(c.pushProxy).catch((e: unknown) => e);
    expect(isGatewayError(err, 'GW_ERR_CONFIG_INVALID')).toBe(true);
    expect((err as Error).message).toMatch(/2 problems[\s\S]*pushProxy\.vapidSubject: required[\s\S]*pushProxy\.sweepSchedule/);
  });
});

describe('VAPID key file', () => {
  it('should write a key pair once and read it back', () => {
    const file = join(tmp(), 'keys', 'vapid.json');
    const keys = generateVapidKeyFile(file);
    expect(Buffer.from(keys.publicKey, 'base64url')).toHaveLength(65);
    expect(readVapidKeyFile(file)).toEqual(keys);
    expect(() => generateVapidKeyFile(file)).toThrow(/exists already/);
  });

  it('should name the command that makes a missing file, and what is wrong in a malformed one', () => {
    const dir = tmp();
    expect(() => readVapidKeyFile(join(dir, 'none.json'))).toThrow(/generate-vapid-keys --out/);
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ publicKey: 'abc', privateKey: Buffer.alloc(32).toString('base64url') }));
    expect(() => readVapidKeyFile(join(dir, 'bad.json'))).toThrow(/publicKey must be 65 bytes/);
  });
});

describe('push proxy data directory lock', () => {
  it('should refuse a second proxy on the same data directory and take over a lock left by a dead process', () => {
    const dir = tmp();
    const release = lockProxyDataDir(dir);
    expect(() => lockProxyDataDir(dir)).toThrow(/another push proxy \(pid \d+\)/);
    release();
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    writeFileSync(join(dir, 'push-proxy.lock'), `${dead.stdout}\n`);
    lockProxyDataDir(dir)();
  });
});

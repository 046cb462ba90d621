import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnCli } from '../helpers/child-gateway.js';

async function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  const p = spawnCli(args, env);
  const code = await p.exited;
  await new Promise((r) => setImmediate(r));
  return { code, out: p.output.join('\n') };
}

describe('pulsegate push-proxy (CLI)', () => {
  it('should write a VAPID key file readable only by its owner, and refuse to overwrite it', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'pg-cli-vapid-')), 'vapid.json');
    const first = await run(['push-proxy', 'generate-vapid-keys', '--out', file]);
    expect(first.code, first.out).toBe(0);
    const keys = JSON.parse(readFileSync(file, 'utf8')) as { publicKey: string };
    expect(first.out).toContain(keys.publicKey);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const again = await run(['push-proxy', 'generate-vapid-keys', '--out', file]);
    expect(again.code).toBe(1);
    expect(again.out).toContain('exists already');
  });

  it('should exit 2 without --out, and 3 without a VAPID subject', async () => {
    const noOut = await run(['push-proxy', 'generate-vapid-keys']);
    expect(noOut.code).toBe(2);
    expect(noOut.out).toContain('generate-vapid-keys needs --out FILE');
    const dir = mkdtempSync(join(tmpdir(), 'pg-cli-proxy-'));
    const config = join(dir, 'c.json');
    writeFileSync(config, JSON.stringify({ dataDir: dir, pushProxy: { port: 0 } }));
    const noSubject = await run(['push-proxy', '--config', config]);
    expect(noSubject.code).toBe(3);
    expect(noSubject.out).toContain('pushProxy.vapidSubject: required');
  });

  it('should refuse to start without its key file, naming the command that writes one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pg-cli-proxy-'));
    const config = join(dir, 'c.json');
    writeFileSync(config, JSON.stringify({ dataDir: dir, pushProxy: { port: 0, vapidSubject: 'mailto:ops@example.org' } }));
    const res = await run(['push-proxy', '--config', config]);
    expect(res.code).toBe(1);
    expect(res.out).toContain(`GW_ERR_VAPID_KEYS: VAPID key file ${join(dir, 'push-proxy', 'vapid.json')} does not exist; make one with: pulsegate push-proxy generate-vapid-keys --out`);
  });
});

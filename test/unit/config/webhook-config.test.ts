import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../gateway/config/load-config.js';

const dir = mkdtempSync(join(tmpdir(), 'pg-webhook-config-'));

function problemsOf(overrides: Record<string, unknown>, env: Record<string, string> = {}): string[] {
  try {
    loadConfig({ env, overrides });
    return [];
  } catch (err) {
    return (err as { details: { problems: string[] } }).details.problems;
  }
}

describe('delivery.webhooks config', () => {
  it('should read the secret from secretEnv and never print it', () => {
    const c = loadConfig({ env: { HOOK_SECRET: 'a-secret-of-enough-length' }, overrides: { delivery: { webhooks: [{ name: 'ops', url: 'http://127.0.0.1:9/x', secretEnv: 'HOOK_SECRET' }] } } });
    const w = c.delivery.webhooks[0]!;
    expect(w.secret).toBe('a-secret-of-enough-length');
    expect(w.maxAttempts).toBe(8);
    expect(w.filter).toEqual({ sensorKinds: [], rules: [], minSeverity: 'info' });
    expect(JSON.stringify(c)).not.toContain('a-secret-of-enough-length');
  });

  it('should read the secret from secretFile (relative to the config file), trailing newline dropped', () => {
    writeFileSync(join(dir, 'hook.secret'), 'file-secret-0123456789\n');
    const cfg = join(dir, 'gw.json');
    writeFileSync(cfg, JSON.stringify({ delivery: { webhooks: [{ name: 'f', url: 'https://127.0.0.1/x', secretFile: 'hook.secret' }] } }));
    const w = loadConfig({ file: cfg, env: {} }).delivery.webhooks[0]!;
    expect(w.secret).toBe('file-secret-0123456789');
    expect(w.secretFile).toBe(join(dir, 'hook.secret'));
  });

  it('should list every webhook problem at once', () => {
    const problems = problemsOf({
      delivery: {
        webhooks: [
          { name: 'a', url: 'http://127.0.0.1/a', secretEnv: 'MISSING_SECRET', filter: { sensorKinds: ['toaster'], rules: ['no-such-rule'] } },
          { name: 'a', url: 'http://127.0.0.1/b' },
          { name: 'c', url: 'http://127.0.0.1/c', secretFile: join(dir, 'absent'), secretEnv: 'X' },
          { name: 'd', url: 'http://127.0.0.1/d', secretEnv: 'SHORT' },
        ],
      },
    }, { SHORT: 'short' });
    expect(problems).toEqual([
      'delivery.webhooks[0].filter.sensorKinds: unknown sensor kind "toaster" (known: heart-rate, bridge)',
      'delivery.webhooks[0].filter.rules: no alert rule has the id "no-such-rule"',
      'delivery.webhooks[0].secretEnv: the environment variable MISSING_SECRET is not set or empty',
      'delivery.webhooks[1].name: "a" is used twice',
      'delivery.webhooks[1]: exactly one of secretFile and secretEnv must be set (the HMAC signing secret)',
      'delivery.webhooks[2]: exactly one of secretFile and secretEnv must be set (the HMAC signing secret)',
      'delivery.webhooks[3]: the secret must be at least 16 characters, got 5',
    ]);
  });

  it('should refuse a url that is not http(s)', () => {
    expect(problemsOf({ delivery: { webhooks: [{ name: 'a', url: 'ftp://x', secretEnv: 'S' }] } }, { S: '0123456789abcdefgh' })).toEqual(['delivery.webhooks.0.url: must match pattern "^https?://[^\\s]+$"']);
  });
});

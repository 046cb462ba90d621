import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The tier-direction rules of .dependency-cruiser.cjs (run by `npm test`), on a small fixture
 * tree: a clean one passes, each wrong-way import fails the check and is named.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const CONFIG = join(ROOT, '.dependency-cruiser.cjs');
const DEPCRUISE = join(ROOT, 'node_modules/.bin/depcruise');
const base = mkdtempSync(join(tmpdir(), 'pulsegate-deprules-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const CLEAN: Record<string, string> = {
  'gateway/errors.ts': 'export const E = 1;\n',
  'gateway/log/types.ts': "export interface LogRecord { readonly offset: number }\n",
  'gateway/log/message-log.ts': "import { E } from '../errors.js';\nimport type { LogRecord } from './types.js';\nexport const log = (r: LogRecord) => r.offset + E;\n",
  'gateway/ingest/mqtt-ingest.ts': "import { log } from '../log/message-log.js';\nexport const ingest = () => log({ offset: 1 });\n",
  'gateway/sinks/types.ts': "import type { LogRecord } from '../log/types.js';\nexport type Stored = LogRecord;\n",
  'gateway/main.ts': "import { ingest } from './ingest/mqtt-ingest.js';\ningest();\n",
};

let n = 0;
function fixture(extra: Record<string, string>): string {
  const dir = join(base, `t${n++}`);
  const files = { ...CLEAN, ...extra, 'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true } }) };
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

function cruise(dir: string): Promise<{ code: number; out: string }> {
  return new Promise((res) => {
    execFile(DEPCRUISE, ['gateway', '--config', CONFIG], { cwd: dir, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      res({ code, out: stdout + stderr });
    });
  });
}

describe('tier direction check (dependency-cruiser)', () => {
  it('a tree whose imports go down the data flow passes', async () => {
    const r = await cruise(fixture({}));
    expect(r.out).toContain('no dependency violations');
    expect(r.code).toBe(0);
  });

  it('a wrong-way import fails the check: the log importing from ingest, and the cycle it makes', async () => {
    const r = await cruise(fixture({ 'gateway/log/outbox.ts': "import { ingest } from '../ingest/mqtt-ingest.js';\nexport const o = ingest;\n", 'gateway/log/message-log.ts': CLEAN['gateway/log/message-log.ts'] + "import { o } from './outbox.js';\nexport const p = o;\n" }));
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('log-and-window-import-nothing-from-ingest');
    expect(r.out).toContain('log-imports-upstream');
    expect(r.out).toContain('no-circular');
  });

  it('an upstream types.ts is allowed by type only: a value import of it fails', async () => {
    const r = await cruise(fixture({ 'gateway/log/types.ts': "export const KIND = 1;\n", 'gateway/sinks/types.ts': "import { KIND } from '../log/types.js';\nexport const K = KIND;\n" }));
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('sinks-imports-upstream-types-by-type-only');
  });
});

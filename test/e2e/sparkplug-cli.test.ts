import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnCli } from '../helpers/child-gateway.js';

const dir = mkdtempSync(join(tmpdir(), 'pg-sp-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('pulsegate check-config with ingest.sparkplug', () => {
  it('names every problem of the Sparkplug B field mapping and exits 3', async () => {
    const f = join(dir, 'sparkplug.yaml');
    writeFileSync(f, 'ingest:\n  sparkplug:\n    enabled: true\n    fields:\n      pulse: P\n      bpm: HR\n      rrMs: HR\n');
    const { output, exited } = spawnCli(['check-config', f]);
    expect(await exited).toBe(3);
    const text = output.join('\n');
    expect(text).toContain('ingest.sparkplug.fields.pulse: kind "heart-rate" has no field "pulse"');
    expect(text).toContain('ingest.sparkplug.fields.rrMs: metric "HR" is already mapped to field "bpm"');
  });
});

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Args } from '../../../bench/lib/args.js';

const ROOT = join(import.meta.dirname, '..', '..', '..');

/** `npx tsx bench/run.ts ...args`: exit code and output (bounded: these runs stop before any load). */
function runBench(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'run.ts'), ...args], { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
    });
  });
}

describe('npm run bench options', () => {
  it('should print its usage for --help and exit 0, without starting a run', async () => {
    const r = await runBench(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: npm run bench/);
    for (const o of ['--quick', '--reps', '--scenario', '--cores', '--profile', '--no-push-proxy']) expect(r.stdout).toContain(o);
  });

  it('should refuse a misspelt option, an unknown system and an unknown scenario with exit 2, naming each', async () => {
    const typo = await runBench(['--quik', '--rep', '3']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('unknown options: --quik, --rep');
    const names = await runBench(['--sut', 'pulsegate,nats', '--scenario', 'qos2-single']);
    expect(names.code).toBe(2);
    expect(names.stderr).toContain('--sut nats: not one of');
    expect(names.stderr).toContain('--scenario qos2-single: not one of');
  });

  it('Args.unknown should list flags and valued options not known', () => {
    expect(new Args(['--quick', '--reps', '3', '--colour=red', '--x']).unknown(['quick', 'reps'])).toEqual(['x', 'colour']);
  });
});

import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * mqtt-packet's debug loggers are no-ops once the ingest module is loaded, unless DEBUG was set
 * at start, when they print as before. Each case is a fresh Node process (the swap happens at load).
 */
const run = promisify(execFile);
const ingestModule = fileURLToPath(new URL('../../../gateway/ingest/mqtt-ingest.ts', import.meta.url));
const script = `
import ${JSON.stringify(ingestModule)};
import { createRequire } from 'node:module';
const require = createRequire(${JSON.stringify(fileURLToPath(new URL('../../../node_modules/mqtt-packet/parser.js', import.meta.url)))});
const mqtt = require('mqtt-packet');
const parser = mqtt.parser();
let packets = 0;
parser.on('packet', () => packets++);
parser.parse(mqtt.generate({ cmd: 'publish', topic: 'sensors/heart-rate/d1', payload: Buffer.from('x'), qos: 1, messageId: 3 }));
console.log(JSON.stringify({ quiet: require('debug').pulsegateQuiet === true, packets }));
`;

async function child(env: Record<string, string>): Promise<{ out: { quiet: boolean; packets: number }; stderr: string }> {
  const base = { ...process.env };
  delete base['DEBUG'];
  const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...base, ...env }, timeout: 30_000 });
  return { out: JSON.parse(stdout.trim().split('\n').pop()!) as { quiet: boolean; packets: number }, stderr };
}

describe('mqtt-packet debug logging', () => {
  it('is a no-op without DEBUG: the parser still parses, nothing asks the debug package', async () => {
    const { out, stderr } = await child({});
    expect(out).toEqual({ quiet: true, packets: 1 });
    expect(stderr).not.toContain('mqtt-packet:parser');
  });

  it('prints as before when DEBUG names it at start', async () => {
    const { out, stderr } = await child({ DEBUG: 'mqtt-packet:*' });
    expect(out).toEqual({ quiet: false, packets: 1 });
    expect(stderr).toContain('mqtt-packet:parser');
  });
});

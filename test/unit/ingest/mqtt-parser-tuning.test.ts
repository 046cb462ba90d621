import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { tuneBufferListReads } from '../../../gateway/ingest/mqtt-parser-tuning.js';
import { mulberry32 } from '../../helpers/random.js';

/**
 * What gateway/ingest/mqtt-parser-tuning.ts changes in aedes' parser stack must not change what
 * it parses. mqtt-packet's debug loggers are no-ops once the ingest module is loaded, unless DEBUG was set
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
console.log(JSON.stringify({ quiet: require('debug').pulsegateQuiet === true, packets, inPlace: require('bl').prototype.pulsegateInPlaceReads === true }));
`;

async function child(env: Record<string, string>): Promise<{ out: { quiet: boolean; packets: number; inPlace: boolean }; stderr: string }> {
  const base = { ...process.env };
  delete base['DEBUG'];
  const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...base, ...env }, timeout: 30_000 });
  return { out: JSON.parse(stdout.trim().split('\n').pop()!) as { quiet: boolean; packets: number; inPlace: boolean }, stderr };
}

describe('mqtt-packet debug logging', () => {
  it('is a no-op without DEBUG: the parser still parses, nothing asks the debug package', async () => {
    const { out, stderr } = await child({});
    expect(out).toEqual({ quiet: true, packets: 1, inPlace: true });
    expect(stderr).not.toContain('mqtt-packet:parser');
  });

  it('prints as before when DEBUG names it at start', async () => {
    const { out, stderr } = await child({ DEBUG: 'mqtt-packet:*' });
    expect(out).toEqual({ quiet: false, packets: 1, inPlace: true });
    expect(stderr).toContain('mqtt-packet:parser');
  });
});

type Bl = { length: number; append(b: Buffer): unknown; [m: string]: unknown };
const requireBl = createRequire(fileURLToPath(new URL('../../../node_modules/mqtt-packet/parser.js', import.meta.url)));
/** A separate, untouched instance of the bl module (the one mqtt-packet uses may already be tuned). */
function freshBufferList(): new () => Bl {
  const path = requireBl.resolve('bl');
  const dir = path.slice(0, path.lastIndexOf('/') + 1);
  const saved = Object.keys(requireBl.cache).filter((k) => k.startsWith(dir)).map((k) => [k, requireBl.cache[k]] as const);
  for (const [k] of saved) delete requireBl.cache[k];
  try {
    return (requireBl('bl') as { BufferList: new () => Bl }).BufferList;
  } finally {
    for (const [k, m] of saved) requireBl.cache[k] = m;
  }
}
const Plain = freshBufferList();
const Tuned = freshBufferList();
tuneBufferListReads([Tuned.prototype as unknown as Record<string, unknown>]);

function outcome(f: () => unknown): unknown {
  try {
    return { value: f() };
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code ?? (err as Error).name };
  }
}

describe('bl reads in place', () => {
  it('replaces the readers (the comparison below is against the originals)', () => {
    expect(Tuned.prototype['readUInt8' as never]).not.toBe(Plain.prototype['readUInt8' as never]);
    expect(Tuned.prototype['toString' as never]).not.toBe(Plain.prototype['toString' as never]);
  });

  it('readUInt8/16BE/32BE and toString give what the originals give (or throw alike), over random splits', () => {
    const rnd = mulberry32(7);
    for (let round = 0; round < 300; round++) {
      const plain = new Plain();
      const tuned = new Tuned();
      const parts = 1 + Math.floor(rnd() * 5);
      for (let p = 0; p < parts; p++) {
        const b = Buffer.from(Array.from({ length: Math.floor(rnd() * 6) }, () => Math.floor(rnd() * 256)));
        plain.append(b);
        tuned.append(b);
      }
      for (let off = -2; off <= plain.length + 2; off++) {
        for (const m of ['readUInt8', 'readUInt16BE', 'readUInt32BE']) {
          const f = (l: Bl) => (l[m] as (o: number) => number).call(l, off);
          expect(outcome(() => f(tuned)), `${m}(${off}) of ${plain.length} bytes`).toEqual(outcome(() => f(plain)));
        }
        for (const end of [off, off + 1, off + 3, plain.length, plain.length + 1, undefined]) {
          const f = (l: Bl) => (l['toString'] as (e: string, s: number, x?: number) => string).call(l, 'latin1', off, end);
          expect(outcome(() => f(tuned)), `toString(${off}, ${String(end)})`).toEqual(outcome(() => f(plain)));
        }
      }
      expect(outcome(() => (tuned['readUInt8'] as () => number).call(tuned))).toEqual(outcome(() => (plain['readUInt8'] as () => number).call(plain)));
    }
  });
});

/**
 * This checkout against another one, in one process (prints figures; not a pass/fail test).
 *
 *   git worktree add /tmp/old <rev> && ln -s "$PWD/node_modules" /tmp/old/node_modules
 *   npx tsx bench/ab-bench.ts --old /tmp/old [--what append|replay] [--reps 12] [--records 200000]
 *
 * Both builds' modules are imported side by side and take turns, round after round (the order
 * swapped every round), so both meet the same noise of the machine; only the medians and their
 * ratio compare. On a machine whose speed swings within minutes, this is what tells a 10-20 %
 * change apart, where two runs of a benchmark one after the other do not.
 *   append   the ingest append: a record body of a single heart-rate reading (100 topics, a
 *            durability callback each) into a real log; ns per append.
 *   replay   replay's read and decode (stages A and B of replay-bench.ts) over one filled log;
 *            CPU µs per record for the read alone (A) and with the decode (B).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Args } from './lib/args.js';
import { median } from './lib/stats.js';
import { heartRateLen, writeHeartRate } from './lib/wire.js';

const args = new Args(process.argv.slice(2));
const oldRoot = args.str('old', '');
if (oldRoot === '') {
  process.stderr.write('ab-bench: --old <checkout> is required (another checkout of pulsegate, with node_modules)\n');
  process.exit(2);
}
const what = args.str('what', 'append');
const reps = Math.max(2, Math.floor(args.num('reps', 12)));
const records = Math.max(1, Math.floor(args.num('records', 200_000)));
const roots = { old: resolve(oldRoot), new: resolve(fileURLToPath(new URL('..', import.meta.url))) } as const;
type Build = keyof typeof roots;
const load = async (root: string): Promise<Record<string, any>> => ({
  log: await import(join(root, 'gateway/log/message-log.ts')),
  fmt: await import(join(root, 'gateway/log/ingest-record-format.ts')),
  rec: await import(join(root, 'gateway/ingest/ingest-record.ts')),
  dec: await import(join(root, 'gateway/ingest/payload-decoder.ts')),
  kinds: await import(join(root, 'gateway/kinds/registry.ts')),
  cfg: await import(join(root, 'gateway/config/load-config.ts')),
});
const builds: Record<Build, Record<string, any>> = { old: await load(roots.old), new: await load(roots.new) };
const INGEST = 1;
const order = (round: number): Build[] => (round % 2 === 0 ? ['old', 'new'] : ['new', 'old']);
const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'pulsegate-ab-bench-'));
  dirs.push(d);
  return d;
};
const now = Date.now();
function reading(seq: number, ts: number, bpm: number): Buffer {
  const b = Buffer.allocUnsafe(heartRateLen(seq, ts, bpm));
  writeHeartRate(b, 0, seq, ts, bpm);
  return b;
}
function report(unit: string, series: Record<string, Record<Build, number[]>>): void {
  process.stdout.write(`${what}: ${roots.new} (new) against ${roots.old} (old), ${reps} rounds taking turns\n`);
  for (const [name, s] of Object.entries(series)) {
    const o = median(s.old)!;
    const n = median(s.new)!;
    process.stdout.write(`  ${name.padEnd(8)} old ${o.toFixed(3).padStart(9)} ${unit}  new ${n.toFixed(3).padStart(9)} ${unit}  new/old ${(n / o).toFixed(2)}x\n`);
    process.stdout.write(`           old [${s.old.map((x) => x.toFixed(2)).join(' ')}]\n           new [${s.new.map((x) => x.toFixed(2)).join(' ')}]\n`);
  }
}

try {
  if (what === 'append') {
    const topics = Array.from({ length: 100 }, (_, i) => `sensors/heart-rate/bench-c0-d${i}`);
    const payload = reading(1, now, 72);
    const logs: Record<Build, any> = { old: null, new: null };
    for (const b of ['old', 'new'] as const) {
      logs[b] = await builds[b].log.createMessageLog({ dir: tempDir() });
      await logs[b].start();
    }
    const cb = (): void => {};
    const ns: Record<Build, number[]> = { old: [], new: [] };
    for (let r = 0; r < reps; r++) {
      for (const b of order(r)) {
        const log = logs[b];
        const body = builds[b].fmt.ingestRecordBody;
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < records; i++) log.append(INGEST, body(now + i, topics[i % 100]!, payload), cb);
        ns[b].push(Number(process.hrtime.bigint() - t0) / records);
        await log.whenDurable(log.nextOffset - 1);
      }
    }
    for (const b of ['old', 'new'] as const) await logs[b].close();
    report('ns/append', { append: ns });
  } else if (what === 'replay') {
    const dir = tempDir();
    const fill = await builds.new.log.createMessageLog({ dir });
    await fill.start();
    for (let i = 0; i < records; i++) {
      const seq = Math.floor(i / 100) + 1;
      fill.append(INGEST, builds.new.fmt.encodeIngestRecord(now, `sensors/heart-rate/replay-d${i % 100}`, reading(seq, now - 60_000 + seq * 5, 60 + (i % 100))));
      if (i % 10_000 === 9_999) await fill.whenDurable(fill.nextOffset - 1);
    }
    await fill.close();
    const us: Record<'read' | 'decode', Record<Build, number[]>> = { read: { old: [], new: [] }, decode: { old: [], new: [] } };
    for (let r = 0; r < reps; r++) {
      for (const b of order(r)) {
        const t = builds[b];
        const kinds = t.kinds.createKindRegistry();
        const reader = t.rec.createIngestRecordReader(kinds, t.dec.createPayloadDecoder(kinds, t.cfg.loadConfig({ env: {} }).ingest));
        for (const stage of ['read', 'decode'] as const) {
          const log = await t.log.createMessageLog({ dir });
          await log.start();
          const cpu0 = process.cpuUsage();
          let n = 0;
          for await (const batch of log.readBatches(log.firstOffset)) {
            for (const record of batch) {
              if (stage === 'read') n++;
              else n += reader.readings(record.payload, reader.receivedAt(record.payload)).length;
            }
          }
          const cpu = process.cpuUsage(cpu0);
          await log.close();
          if (n !== records) throw new Error(`${b} ${stage}: ${n} of ${records}`);
          us[stage][b].push((cpu.user + cpu.system) / records);
        }
      }
    }
    report('CPU µs/record', us);
  } else {
    process.stderr.write(`ab-bench: --what must be append or replay, not ${what}\n`);
    process.exitCode = 2;
  }
} finally {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

/**
 * Protobuf decode throughput of the fast path: heart-rate batches of 100 readings, as the
 * qos1-batch100 scenario of bench/run.ts publishes them. Prints readings/s of decode() alone.
 *
 *   npx tsx bench/decode-bench.ts [--quick]
 */
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../gateway/config/load-config.js';
import { createPayloadDecoder } from '../gateway/ingest/payload-decoder.js';
import { heartRateKind } from '../gateway/kinds/heart-rate.js';
import { createKindRegistry } from '../gateway/kinds/registry.js';
import { heartRateBatchLen, writeHeartRateBatch } from './lib/wire.js';

const quick = process.argv.includes('--quick');
const ROUNDS = quick ? 20_000 : 100_000;
const BATCH = 100;
const kinds = createKindRegistry([heartRateKind]);
const decoder = createPayloadDecoder(kinds, loadConfig({ env: {} }).ingest);
const ts = Date.now();
const bpms = new Uint8Array(256).map((_, i) => 50 + (i % 120));
const payloads: Buffer[] = [];
for (let p = 0; p < 64; p++) {
  const seq = 1 + p * BATCH;
  const buf = Buffer.alloc(heartRateBatchLen(seq, BATCH, ts, bpms));
  writeHeartRateBatch(buf, 0, seq, BATCH, ts, bpms);
  payloads.push(buf);
}
let kept = 0;
function round(n: number): void {
  for (let i = 0; i < n; i++) kept += decoder.decode(heartRateKind, 'athlete-1', payloads[i & 63]!, ts).readings.length;
}
round(ROUNDS / 10);
const t0 = performance.now();
round(ROUNDS);
const s = (performance.now() - t0) / 1000;
process.stdout.write(`decode: ${Math.round((ROUNDS * BATCH) / s).toLocaleString('en-US')} readings/s (${kept} kept)\n`);

import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { createPayloadDecoder } from '../../../gateway/ingest/payload-decoder.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { resolveOptions } from '../../../simulators/options.js';
import { PublishPlanner } from '../../../simulators/plan.js';

const START = Date.UTC(2025, 10, 22, 7, 0, 0);
const kinds = createKindRegistry();
const decoder = createPayloadDecoder(kinds, loadConfig({ env: {} }).ingest);

describe('simulator payloads', () => {
  for (const kind of ['heart-rate', 'bridge'] as const) {
    for (const format of ['protobuf', 'json'] as const) {
      for (const batch of [1, 7]) {
        it(`simulator payloads should be accepted whole by the gateway decoder (${kind}, ${format}, batch ${batch})`, () => {
          const items = new PublishPlanner(
            resolveOptions({ kind, format, batch, devices: 2, durationS: 1800, rate: kind === 'bridge' ? 2 : 5, anomalyProbability: 0.01, seed: 3, startTs: START }),
          ).all();
          let readings = 0;
          const rejected: unknown[] = [];
          for (const item of items) {
            const r = decoder.decode(kinds.get(kind)!, item.device.id, item.payload, item.dueTs);
            rejected.push(...r.rejected);
            expect(r.readings.map((x) => x.seq)).toEqual(item.readings.map((x) => x.seq));
            readings += r.readings.length;
          }
          expect(rejected).toEqual([]);
          expect(readings).toBe(items.reduce((a, i) => a + i.readings.length, 0));
        });
      }
    }
  }
});

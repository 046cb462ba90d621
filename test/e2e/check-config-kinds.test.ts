/** `pulsegate check-config` on kinds and sources: every mistake listed, exit 3; the shipped example passes. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnCli } from '../helpers/child-gateway.js';

const dir = mkdtempSync(join(tmpdir(), 'pg-check-kinds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BAD = `
kinds:
  heart-rate:
    fields: { x: { type: int } }
  room:
    fields:
      temp: { type: float, min: 50, max: 10 }
      mode: { type: enum }
      flag: { type: boolean }
      seq: { type: int }
    tags: [nope]
    window:
      groupBy: [ghost]
      aggregates:
        - { ops: [mean] }
  plug:
    fields:
      power: { type: float, required: true }
      label: { type: string }
    window:
      aggregates:
        - { field: label, ops: [max] }
ingest:
  sources:
    - topic: tele/+/SENSOR
      kind: nokind
      fields: { a: "ENERGY..Power" }
    - topic: tele/{deviceId}/SENSOR
      kind: plug
      fields: { volts: ENERGY.Voltage }
      tsFormat: s
    - topic: tele/{deviceId}/SENSOR
      kind: plug
      fields: { power: ENERGY.Power }
      tsPath: Time
      seqPath: 7
`;

describe('pulsegate check-config: kinds and sources', () => {
  it('should list every mistake of a bad kinds/sources config and exit 3', async () => {
    const f = join(dir, 'bad-kinds.yaml');
    writeFileSync(f, BAD);
    const { output, exited } = spawnCli(['check-config', f]);
    expect(await exited).toBe(3);
    const text = output.join('\n');
    const expected = [
      'kinds.heart-rate: a built-in kind has this name',
      'kinds.room.fields.flag.type: must be one of',
      'kinds.room.fields.temp: min 50 is above max 10',
      'kinds.room.fields.mode.values: an enum field needs its values',
      'kinds.room.fields.seq: "seq" is reserved',
      'kinds.room.tags: "nope" is not a field of the kind',
      'kinds.room.window.groupBy: "ghost" is not a field of the kind',
      'kinds.room.window.aggregates.0: mean needs a field',
      'kinds.plug.window.aggregates.0.field: "label" is a string; only int, float and bool fields are aggregated',
      'ingest.sources.0.topic: needs a {deviceId} segment',
      'ingest.sources.0.kind: unknown kind "nokind"',
      'ingest.sources.0.fields.a: path "ENERGY..Power" has an empty key',
      'ingest.sources.1.fields.volts: kind plug has no field "volts"',
      'ingest.sources.1.fields: the required field "power" of kind plug has no path',
      'ingest.sources.1.tsFormat: given without tsPath',
      'ingest.sources.2.topic: the same pattern as ingest.sources.1',
      'ingest.sources.2.seqPath: must be string',
      'ingest.sources.2.tsFormat: tsPath needs its format',
    ];
    for (const e of expected) expect(text, e).toContain(e);
    expect(text).toContain(`(${expected.length} problems)`);
  });

  it('should pass the shipped examples/real-sensors.yaml', async () => {
    const { output, exited } = spawnCli(['check-config', fileURLToPath(new URL('../../examples/real-sensors.yaml', import.meta.url))]);
    expect(await exited).toBe(0);
    expect(output.join('\n')).toContain('"power-plug"');
  });
});

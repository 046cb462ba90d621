import { describe, expect, it } from 'vitest';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createSparkplugMapping } from '../../../gateway/ingest/sparkplug-mapping.js';
import { parseSparkplugTopic } from '../../../gateway/ingest/sparkplug.js';

const base = { enabled: true, kind: 'heart-rate', fields: {}, rebirthIntervalMs: 1000, maxEdgeNodes: 10, maxDevicesPerNode: 10, hostId: null };

describe('parseSparkplugTopic', () => {
  it('takes the six edge node message types with the right number of segments', () => {
    expect(parseSparkplugTopic('spBv1.0/plant/DDATA/line1/strap-1')).toEqual({ group: 'plant', type: 'DDATA', edge: 'line1', device: 'strap-1' });
    expect(parseSparkplugTopic('spBv1.0/plant/NBIRTH/line1')).toEqual({ group: 'plant', type: 'NBIRTH', edge: 'line1', device: null });
  });

  it('refuses what would make an ambiguous or unsafe device id, and host application topics', () => {
    for (const t of ['spBv1.0/plant/NDATA/line1/x', 'spBv1.0/plant/DDATA/line1', 'spBv1.0/pl:ant/NDATA/e', 'spBv1.0/plant/NDATA/a b', 'spBv1.0/STATE/host', 'spBv1.0/plant/NCMD/e', 'spBv1.0/plant/XDATA/e', `spBv1.0/g/DDATA/e/${'d'.repeat(130)}`]) {
      expect(parseSparkplugTopic(t), t).toHaveProperty('invalid');
    }
  });
});

describe('createSparkplugMapping', () => {
  it('maps each field of the kind from the metric of the same name by default', () => {
    const m = createSparkplugMapping(base, createKindRegistry());
    expect([...m.fieldOf]).toEqual([
      ['bpm', 'bpm'],
      ['rrMs', 'rrMs'],
    ]);
  });

  it('names every problem of ingest.sparkplug.fields in one error', () => {
    expect(() => createSparkplugMapping({ ...base, fields: { bpm: 'HR', pulse: 'P', rrMs: 'HR' } }, createKindRegistry())).toThrow(/fields\.pulse: kind "heart-rate" has no field "pulse"[\s\S]*fields\.rrMs: metric "HR" is already mapped/);
    expect(() => createSparkplugMapping({ ...base, kind: 'nope' }, createKindRegistry())).toThrow(/unknown kind "nope"/);
  });
});

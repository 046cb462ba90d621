import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { createSink } from '../../../gateway/sinks/create-sink.js';
import { baseSinksConfig } from '../../integration/sinks/sink-contract.js';

describe('createSink', () => {
  it('should choose InfluxDB when influxUrl is set and the embedded store otherwise', async () => {
    const kinds = createKindRegistry();
    expect(createSink({ config: baseSinksConfig({ influxUrl: 'http://127.0.0.1:1/pulsegate' }), kinds }).name).toBe('influx');
    const embedded = createSink({ config: baseSinksConfig(), kinds, registry: new Registry() });
    expect(embedded.name).toBe('embedded');
    await embedded.close();
  });

  it('should record writes into the registry it is given', async () => {
    const registry = new Registry();
    const sink = createSink({ config: baseSinksConfig(), kinds: createKindRegistry(), registry });
    await sink.start();
    await sink.write({ readings: [], windows: [], health: [{ ts: 1, values: { heap_mb: 1 } }] });
    await sink.close();
    expect(await registry.metrics()).toContain('pulsegate_sink_points_written_total{sink="embedded"} 1');
  });
});

import type { KindDescriptor } from './kind-descriptor.js';

/** Athletes' heart rate, typically 5 Hz per athlete. */
export const heartRateKind: KindDescriptor = {
  name: 'heart-rate',
  proto: {
    reading: 'pulsegate.v1.HeartRateReading',
    batch: 'pulsegate.v1.HeartRateBatch',
    batchField: 'readings',
  },
  measurement: 'heart_rate',
  fields: {
    // 0 is a flatline (asystole or a detached strap), which must reach the alert rules.
    bpm: { type: 'int', min: 0, max: 300, required: true },
    rrMs: { type: 'int', min: 100, max: 5000, required: false, protoName: 'rr_ms' },
  },
  tags: [],
  window: {
    groupBy: [],
    aggregates: [{ field: 'bpm', ops: ['count', 'min', 'max', 'sum', 'mean', 'last'] }],
  },
};

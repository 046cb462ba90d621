import type { KindDescriptor } from './kind-descriptor.js';

export const VEHICLE_CLASSES = ['UNKNOWN', 'CAR', 'BUS', 'TRUCK', 'MOTORCYCLE', 'VAN'] as const;
export type VehicleClass = (typeof VEHICLE_CLASSES)[number];

/** Bridge sensors that detect and classify passing vehicles. */
export const bridgeKind: KindDescriptor = {
  name: 'bridge',
  proto: {
    reading: 'pulsegate.v1.VehicleDetection',
    batch: 'pulsegate.v1.VehicleBatch',
    batchField: 'detections',
  },
  measurement: 'bridge_vehicle',
  fields: {
    lane: { type: 'int', min: 1, max: 16, required: true },
    vehicleClass: { type: 'enum', values: VEHICLE_CLASSES, required: true, protoName: 'vehicle_class' },
    speedKmh: { type: 'float', min: 0, max: 400, required: true, protoName: 'speed_kmh' },
    axles: { type: 'int', min: 2, max: 20, required: true },
    weightKg: { type: 'float', min: 0, max: 200_000, required: false, protoName: 'weight_kg' },
  },
  tags: ['lane', 'vehicleClass'],
  window: {
    groupBy: ['vehicleClass', 'lane'],
    aggregates: [{ ops: ['count'] }, { field: 'speedKmh', ops: ['mean', 'max'] }],
  },
};

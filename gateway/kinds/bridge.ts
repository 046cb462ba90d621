import { builtinKind } from './registry.js';

/** Same order as enum VehicleClass in proto/pulsegate.proto and as kinds/builtin.yaml lists them. */
export const VEHICLE_CLASSES = ['UNKNOWN', 'CAR', 'BUS', 'TRUCK', 'MOTORCYCLE', 'VAN'] as const;
export type VehicleClass = (typeof VEHICLE_CLASSES)[number];

/** Bridge sensors that detect and classify passing vehicles: an entry of kinds/builtin.yaml. */
export const bridgeKind = builtinKind('bridge');

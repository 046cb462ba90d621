/** Programmatic API of the simulators (used by tests, the demo and benchmarks). */
export { runSimulator } from './run.js';
export { resolveOptions, deviceId, SimulatorOptionError, DEFAULT_URL, type SimulatorOptions, type SimulatorProgress, type ResolvedOptions } from './options.js';
export { PublishPlanner, createModel, type PublishItem, type PlannedDevice } from './plan.js';
export { createPayloadEncoder, loadProtoRoot, PROTO_FILE, PAYLOAD_FORMATS, type PayloadEncoder, type PayloadFormat } from './payload-encoder.js';
export { Publisher, PublishError, type PublisherOptions, type ConnectionSpec } from './publisher.js';
export { SummaryBuilder, writeSummaryFile, WINDOW_SIZES, type Summary, type SummaryTotals, type DeviceSummary, type WindowSummary, type WindowCounts, type BpmStats } from './summary.js';
export { HeartRateModel, type HeartRateModelOptions } from './models/heart-rate-model.js';
export { BridgeModel, trafficFactor, TRAFFIC_PROFILE, CLASS_MIX, type BridgeModelOptions } from './models/bridge-model.js';
export { Perturber } from './perturb.js';
export { Random } from './random.js';
export { SENSOR_KINDS, VEHICLE_CLASSES, topicFor, type SensorKind, type VehicleClass, type HeartRateReading, type VehicleDetection, type SimReading } from './readings.js';

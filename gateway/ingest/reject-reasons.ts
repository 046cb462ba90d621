/** Why a publish or a reading was rejected; the `reason` label of pulsegate_readings_rejected_total. */
export const REJECT_REASONS = [
  'decode_error',
  'invalid',
  'timestamp_out_of_range',
  'unknown_kind',
  'bad_topic',
  'too_large',
  'unauthorized',
  /** The gateway failed on a publish (a bug, logged with its stack); the publish alone is refused. */
  'internal_error',
  /** Over the device's publish budget (ingest.rateLimit); only the first of a run is dead-lettered. */
  'rate_limited',
  /** A Sparkplug B data message (or device birth) from an edge node or device whose birth the gateway has not seen; a rebirth is requested. */
  'sparkplug_no_birth',
  /** A Sparkplug B data message naming a metric (or alias) its birth certificate did not declare; a rebirth is requested. */
  'sparkplug_unknown_metric',
  /** A Sparkplug B NDEATH whose bdSeq is not the one of the edge node's current birth (an old session's will). */
  'sparkplug_stale_death',
  /** A Sparkplug B birth past ingest.sparkplug.maxDevicesPerNode. */
  'sparkplug_limit',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

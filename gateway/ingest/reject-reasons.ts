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
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

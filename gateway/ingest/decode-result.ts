import type { Reading } from '../kinds/kind-descriptor.js';
import type { RejectReason } from './reject-reasons.js';

export interface RejectedReading {
  readonly reason: RejectReason;
  readonly detail: string;
}

/**
 * Outcome of decoding one publish: the valid readings and one entry per rejected reading. Treat
 * both arrays as read-only: a `rejected` that is empty may be shared between results.
 */
export interface DecodeResult {
  readonly readings: Reading[];
  readonly rejected: RejectedReading[];
}

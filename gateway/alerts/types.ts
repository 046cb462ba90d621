import type { AlertEvent } from '../wire/alert.js';

/** What the HTTP tier reads of the alert engine: the episodes firing now. */
export interface FiringAlerts {
  /** Firing episodes (their FIRING transition, with its log offset), oldest first. */
  firing(): readonly AlertEvent[];
}

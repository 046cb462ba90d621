/**
 * Readiness for /readyz: the gateway's phase, then the log's health. Ready only in phase `ready`
 * with a log that takes writes and is under its disk high-water mark.
 */
export type GatewayPhase = 'starting' | 'replaying' | 'ready' | 'stopping';

export interface Readiness {
  phase: GatewayPhase;
  /** Null when ready, else why not. */
  notReadyReason(): string | null;
}

export function createReadiness(log: { readonly writeFailure: { readonly message: string } | null; readonly backpressured: boolean }): Readiness {
  return {
    phase: 'starting',
    notReadyReason() {
      if (this.phase !== 'ready') return this.phase;
      const failure = log.writeFailure;
      if (failure !== null) return `log write failing, acks withheld, retrying: ${failure.message}`;
      return log.backpressured ? 'log over its disk high-water mark' : null;
    },
  };
}

import { describe, expect, it } from 'vitest';
import { createReadiness } from '../../../gateway/http/readiness.js';

describe('readiness', () => {
  it('ready only in phase ready with a log that takes writes and is under its high-water mark; the reason names what is wrong', () => {
    const log: { writeFailure: { message: string } | null; backpressured: boolean } = { writeFailure: null, backpressured: false };
    const r = createReadiness(log);
    expect(r.notReadyReason()).toBe('starting');
    r.phase = 'replaying';
    expect(r.notReadyReason()).toBe('replaying');
    r.phase = 'ready';
    expect(r.notReadyReason()).toBeNull();
    log.backpressured = true;
    expect(r.notReadyReason()).toBe('log over its disk high-water mark');
    log.writeFailure = { message: 'ENOSPC' };
    expect(r.notReadyReason()).toBe('log write failing, acks withheld, retrying: ENOSPC');
    r.phase = 'stopping';
    expect(r.notReadyReason()).toBe('stopping');
  });
});

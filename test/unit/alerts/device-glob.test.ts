import { describe, expect, it } from 'vitest';
import { compileGlob } from '../../../gateway/config/alert-rules.js';

describe('device globs (alert rules, GET /v1/alerts?device=)', () => {
  it('should match `*` (any run) and `?` (one character), everything else literally', () => {
    expect(compileGlob('hr-*')('hr-0001')).toBe(true);
    expect(compileGlob('hr-*')('br-0001')).toBe(false);
    expect(compileGlob('hr-??')('hr-01')).toBe(true);
    expect(compileGlob('hr-??')('hr-001')).toBe(false);
    expect(compileGlob('*.1')('a.1')).toBe(true);
    expect(compileGlob('*.1')('a:1')).toBe(false);
    expect(compileGlob('a*b*c')('aXbYc')).toBe(true);
    expect(compileGlob('a*b*c')('aXbYcZ')).toBe(false);
    expect(compileGlob('**')('')).toBe(true);
    expect(compileGlob('?*')('')).toBe(false);
  });

  it('should answer a hostile glob (many stars) against a long device id without catastrophic backtracking', () => {
    // A regular expression built from this glob backtracks through C(128, 24) ways before failing,
    // which blocks the event loop for good; a request may send it as ?device=.
    const hostile = '*a'.repeat(24) + '*b';
    const id = 'a'.repeat(128);
    expect(compileGlob(hostile)(id)).toBe(false);
    expect(compileGlob(hostile)(id + 'b')).toBe(true);
  });
});

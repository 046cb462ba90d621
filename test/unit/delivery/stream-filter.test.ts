import { describe, expect, it } from 'vitest';
import { compileFilter, compileFilters, EMPTY_FILTER, globToRegExp, globWithin } from '../../../gateway/delivery/stream-filter.js';

describe('stream-filter', () => {
  it('globToRegExp should treat only * and ? as special', () => {
    expect(globToRegExp('hr-*').test('hr-1-bed')).toBe(true);
    expect(globToRegExp('hr-?').test('hr-12')).toBe(false);
    expect(globToRegExp('a.b').test('axb')).toBe(false);
    expect(globToRegExp('(x)[y]').test('(x)[y]')).toBe(true);
  });

  it('globWithin should accept only globs that match nothing outside the outer glob', () => {
    expect(globWithin('hr-1', 'hr-*')).toBe(true);
    expect(globWithin('hr-1-*', 'hr-*')).toBe(true);
    expect(globWithin('hr-*', 'hr-1*')).toBe(false);
    expect(globWithin('*', 'hr-*')).toBe(false);
    expect(globWithin('hr-?', 'hr-?')).toBe(true);
    expect(globWithin('hr-?', 'hr-1')).toBe(false);
  });

  it('compileFilter should refuse alert-only parts on windows, and share a key between equal specs', () => {
    expect(() => compileFilter({ ...EMPTY_FILTER, rules: ['r'] }, 'windows')).toThrow(/alerts only/);
    const a = compileFilter({ ...EMPTY_FILTER, kinds: ['b', 'a'] }, 'alerts');
    const b = compileFilter({ ...EMPTY_FILTER, kinds: ['a', 'b'] }, 'alerts');
    expect(a.key).toBe(b.key);
    expect(compileFilter({ ...EMPTY_FILTER, kinds: ['a'] }, 'windows').key).not.toBe(compileFilter({ ...EMPTY_FILTER, kinds: ['a'] }, 'alerts').key);
  });

  it('compileFilters should AND every spec', () => {
    const f = compileFilters([{ ...EMPTY_FILTER, kinds: ['bridge'] }, { ...EMPTY_FILTER, minSeverity: 'warning' }, { ...EMPTY_FILTER, devices: ['br-*'] }], 'alerts');
    expect(f.matches({ kind: 'bridge', severity: 'critical', deviceId: 'br-1' })).toBe(true);
    expect(f.matches({ kind: 'bridge', severity: 'info', deviceId: 'br-1' })).toBe(false);
    expect(f.matches({ kind: 'bridge', severity: 'critical', deviceId: 'hr-1' })).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import { isSafeFieldValue, sseComment, sseEvent, sseRetry } from '../../../gateway/delivery/sse-frame.js';

describe('sse-frame', () => {
  it('sseEvent should put the offset in id, the name in event and one data line per line of data', () => {
    expect(sseEvent('alert', '{"a":1}', 42)).toBe('id: 42\nevent: alert\ndata: {"a":1}\n\n');
    expect(sseEvent('lag', 'a\r\nb\rc\nd')).toBe('event: lag\ndata: a\ndata: b\ndata: c\ndata: d\n\n');
  });

  it('sseEvent should refuse an id that is not a log offset and an event name with CR or LF', () => {
    expect(() => sseEvent('alert', 'x', -1)).toThrow(/log offset/);
    expect(() => sseEvent('alert', 'x', 1.5)).toThrow(/log offset/);
    expect(() => sseEvent('alert\nid: 3' as never, 'x')).toThrow(/CR, LF/);
    expect(isSafeFieldValue('a\rb')).toBe(false);
    expect(isSafeFieldValue('alert')).toBe(true);
  });

  it('comments and retry should be single lines ended by an empty line', () => {
    expect(sseComment()).toBe(':\n\n');
    expect(sseComment('a\nb')).toBe(': a b\n\n');
    expect(sseRetry(3000)).toBe('retry: 3000\n\n');
  });
});

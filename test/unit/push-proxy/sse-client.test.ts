import { describe, expect, it } from 'vitest';
import { parseRetryAfter, SseParser } from '../../../gateway/push-proxy/sse-client.js';

describe('SseParser', () => {
  it('should assemble events split across chunks, with CRLF, CR and LF line ends', () => {
    const p = new SseParser();
    const text = ': heartbeat\r\nid: 7\r\nevent: alert\r\ndata: {"a":\r\ndata: 1}\r\n\r\nid: 8\revent: lag\rdata: x\r\rdata: plain\n\n';
    const out = [];
    for (const ch of text) out.push(...p.feed(ch)); // one character at a time
    expect(out).toEqual([
      { event: 'alert', data: '{"a":\n1}', id: '7' },
      { event: 'lag', data: 'x', id: '8' },
      { event: 'message', data: 'plain', id: null },
    ]);
  });

  it('should ignore an id containing NUL and an event without data', () => {
    const p = new SseParser();
    expect(p.feed('id: 1\u00002\nevent: alert\ndata: y\n\nevent: earliest\n\n')).toEqual([{ event: 'alert', data: 'y', id: null }]);
  });

  it('should refuse an event longer than its bound', () => {
    const p = new SseParser();
    expect(() => p.feed(`data: ${'x'.repeat(1_100_000)}`)).toThrow(/longer than/);
  });
});

describe('parseRetryAfter', () => {
  it('should read delay-seconds and HTTP-dates, and nothing else', () => {
    const now = Date.parse('2026-12-02T06:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Wed, 02 Dec 2026 06:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter(undefined, now)).toBeNull();
  });
});

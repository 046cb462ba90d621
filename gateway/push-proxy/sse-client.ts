/** A client of the gateway's SSE streams (WHATWG HTML "Server-sent events", section 9.2). */

export interface SseMessage {
  /** `message` when the event has no `event:` field. */
  readonly event: string;
  readonly data: string;
  /** The `id:` of this event, or null when it carried none. */
  readonly id: string | null;
}

/** Longest event (all its lines) the parser buffers; a longer one ends the connection. */
export const MAX_SSE_EVENT_BYTES = 1_048_576;

/** Incremental parser: feed decoded text, get the complete events. */
export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private dataBytes = 0;
  private event = '';
  private id: string | null = null;

  feed(text: string): SseMessage[] {
    this.buffer += text;
    const out: SseMessage[] = [];
    for (;;) {
      const m = /\r\n|\n|\r/.exec(this.buffer);
      if (m === null) break;
      // A lone CR at the very end may be the first half of CRLF: wait for the next chunk.
      if (m[0] === '\r' && m.index === this.buffer.length - 1) break;
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      const msg = this.line(line);
      if (msg !== null) out.push(msg);
    }
    if (this.buffer.length + this.dataBytes > MAX_SSE_EVENT_BYTES) throw new Error(`an SSE event is longer than ${MAX_SSE_EVENT_BYTES} bytes`);
    return out;
  }

  private line(line: string): SseMessage | null {
    if (line === '') {
      if (this.data.length === 0) {
        this.event = '';
        this.id = null;
        return null;
      }
      const msg = { event: this.event === '' ? 'message' : this.event, data: this.data.join('\n'), id: this.id };
      this.data = [];
      this.dataBytes = 0;
      this.event = '';
      this.id = null;
      return msg;
    }
    if (line.startsWith(':')) return null; // comment: the hub's heartbeat
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      this.data.push(value);
      this.dataBytes += value.length + 1;
    } else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\u0000')) this.id = value;
    return null;
  }
}

export class SseHttpError extends Error {
  constructor(readonly status: number, readonly retryAfterMs: number | null) {
    super(`the gateway answered ${status}`);
    this.name = 'SseHttpError';
  }
}

export interface OpenSseOptions {
  readonly url: string;
  /** Sent as Last-Event-ID (resume after it). */
  readonly lastEventId: string | null;
  readonly token: string | null;
  readonly signal: AbortSignal;
}

/** Opens one stream and yields its events until the server closes it (returns) or it fails (throws). */
export async function* openSse(options: OpenSseOptions): AsyncGenerator<SseMessage, void, undefined> {
  const headers: Record<string, string> = { accept: 'text/event-stream', 'cache-control': 'no-store' };
  if (options.lastEventId !== null) headers['last-event-id'] = options.lastEventId;
  if (options.token !== null) headers['authorization'] = `Bearer ${options.token}`;
  const res = await fetch(options.url, { headers, signal: options.signal });
  if (res.status !== 200 || res.body === null) {
    await res.body?.cancel();
    throw new SseHttpError(res.status, parseRetryAfter(res.headers.get('retry-after'), Date.now()));
  }
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('text/event-stream')) {
    await res.body.cancel();
    throw new Error(`the gateway answered with content-type "${type}", not text/event-stream`);
  }
  const parser = new SseParser();
  const decoder = new TextDecoder('utf-8');
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      for (const msg of parser.feed(decoder.decode(value, { stream: true }))) yield msg;
    }
  } finally {
    reader.cancel().catch(() => undefined); // the stream is being left; a failing cancel changes nothing
  }
}

/** Retry-After (RFC 9110 section 10.2.3): delay-seconds or an HTTP-date; null when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | null {
  if (value === null || value === undefined || value.trim() === '') return null;
  const v = value.trim();
  if (/^[0-9]+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

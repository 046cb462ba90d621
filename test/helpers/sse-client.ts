import { request, type IncomingMessage } from 'node:http';

/** One dispatched SSE event, or a comment line, as parsed from the raw bytes (WHATWG event stream format). */
export interface SseMessage {
  readonly id: string | null;
  readonly event: string;
  readonly data: string;
  /** Field lines of the event as they came, for checks on the framing itself. */
  readonly raw: string;
}

export interface RawSseClient {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  /** The response body when the status is not 200. */
  readonly body: Promise<string>;
  readonly events: SseMessage[];
  readonly comments: string[];
  readonly retry: number | null;
  /** Resolves when the server ends the stream (or the socket closes). */
  readonly ended: Promise<void>;
  readonly isEnded: () => boolean;
  /** Stops reading the socket (TCP backpressure builds on the server) / reads again. */
  pause(): void;
  resume(): void;
  close(): void;
}

/**
 * A raw SSE client over node:http (no EventSource): parses the stream line by line exactly as
 * the WHATWG algorithm does (CR, LF or CRLF end a line; `field: value`; an empty line dispatches).
 */
export function openSse(url: string, headers: Record<string, string> = {}): Promise<RawSseClient> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers }, agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      const events: SseMessage[] = [];
      const comments: string[] = [];
      let retry: number | null = null;
      let ended = false;
      let buffer = '';
      let id: string | null = null;
      let lastId: string | null = null;
      let event = '';
      let data: string[] = [];
      let raw: string[] = [];
      const onLine = (line: string): void => {
        if (line === '') {
          if (data.length > 0 || raw.length > 0) {
            if (data.length > 0) events.push({ id: id ?? lastId, event: event === '' ? 'message' : event, data: data.join('\n'), raw: raw.join('\n') });
            if (id !== null) lastId = id;
          }
          id = null;
          event = '';
          data = [];
          raw = [];
          return;
        }
        if (line.startsWith(':')) {
          comments.push(line.slice(1).trim());
          return;
        }
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        raw.push(line);
        if (field === 'id') id = value;
        else if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'retry' && /^[0-9]+$/.test(value)) retry = Number(value);
      };
      const chunks: Buffer[] = [];
      const endedP = new Promise<void>((done) => {
        const finish = (): void => {
          ended = true;
          done();
        };
        res.on('end', finish);
        res.on('close', finish);
        res.on('error', finish);
      });
      if (res.statusCode === 200) {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          for (;;) {
            const m = /\r\n|\r|\n/.exec(buffer);
            // A lone CR at the end may be the first half of a CRLF: wait for more.
            if (m === null || (m[0] === '\r' && m.index === buffer.length - 1)) break;
            onLine(buffer.slice(0, m.index));
            buffer = buffer.slice(m.index + m[0].length);
          }
        });
      } else res.on('data', (c: Buffer) => chunks.push(c));
      const body = endedP.then(() => Buffer.concat(chunks).toString('utf8'));
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body,
        events,
        comments,
        get retry() {
          return retry;
        },
        ended: endedP,
        isEnded: () => ended,
        pause: () => res.pause(),
        resume: () => res.resume(),
        close: () => {
          req.destroy();
          res.destroy();
        },
      });
    });
    req.end();
  });
}

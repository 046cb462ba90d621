/**
 * Server-sent event frames (WHATWG HTML, "Server-sent events", the event stream format): a field
 * per line, an empty line ends the event. A line ends at CR, LF or CRLF, so a CR or LF inside an
 * `id:` or `event:` value would end the field early and let the rest forge fields of its own;
 * every id here is a log offset (decimal digits) and every event name one of EVENT_NAMES, and
 * data is split at line ends into one `data:` line each.
 */
export const EVENT_NAMES = {
  alert: 'alert',
  window: 'window',
  /** The asked Last-Event-ID is older than the log keeps: replay starts at `firstOffset`. */
  earliest: 'earliest',
  /** Records [from, to) were deleted (or skipped as damaged) while the client was reading towards them. */
  gap: 'gap',
  /** The client is behind the head by more than delivery.lagWarnMs, or replaying. */
  lag: 'lag',
  /** Replay is over: what follows is live. */
  live: 'live',
  /** The client's buffer bound was reached (or it stalled): the stream ends; reconnect with Last-Event-ID. */
  overflow: 'overflow',
} as const;
export type EventName = (typeof EVENT_NAMES)[keyof typeof EVENT_NAMES];

const LINE_END = /\r\n|\r|\n/;

/** True when `s` can be the value of an `id:` or `event:` field: no CR, LF or NUL. */
export function isSafeFieldValue(s: string): boolean {
  return !/[\r\n\0]/.test(s);
}

/** One event; `id` is the log offset of its record (control events carry none, so they do not move the client's Last-Event-ID). */
export function sseEvent(event: EventName, data: string, id?: number): string {
  if (!isSafeFieldValue(event)) throw new TypeError('an SSE event name may not contain CR, LF or NUL');
  let out = '';
  if (id !== undefined) {
    if (!Number.isSafeInteger(id) || id < 0) throw new TypeError(`an SSE id must be a log offset, got ${String(id)}`);
    out += `id: ${id}\n`;
  }
  out += `event: ${event}\n`;
  for (const line of data.split(LINE_END)) out += `data: ${line}\n`;
  return `${out}\n`;
}

/** A comment line (ignored by EventSource): heartbeats and notes. */
export function sseComment(text = ''): string {
  return `:${text === '' ? '' : ` ${text.split(LINE_END).join(' ')}`}\n\n`;
}

/** The `retry:` field, sent once at the start of a stream. */
export function sseRetry(ms: number): string {
  return `retry: ${Math.max(0, Math.floor(ms))}\n\n`;
}

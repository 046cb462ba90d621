// A Server-Sent Events client over fetch: resumes from the last id it saw (`?lastEventId=` and the
// Last-Event-ID header), tells its state (connecting, live, reconnecting, unavailable) and backs
// off between attempts. fetch instead of EventSource: a 404 or a wrong content type is told apart
// from a network error, and the first connection can resume from an id kept across reloads.

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

/** Parses an event stream body; calls onEvent({ event, data, id }) per dispatched event. */
async function readEvents(body, onEvent, signal) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let event = 'message';
  let data = [];
  let id;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer[nl] === '\r' && buffer[nl + 1] === '\n' ? 2 : 1));
        if (line === '') {
          if (data.length > 0) onEvent({ event, data: data.join('\n'), id });
          event = 'message';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? '' : line.slice(colon + 1);
        if (v.startsWith(' ')) v = v.slice(1);
        if (field === 'event') event = v;
        else if (field === 'data') data.push(v);
        else if (field === 'id') id = v;
      }
    }
  } finally {
    if (signal.aborted) reader.cancel().catch(() => {});
  }
}

/**
 * Opens `url` as an event stream. `lastEventId`: where to resume from (null: from now).
 * onEvent(ev) gets every event with its id; onState(state, info) every change of state.
 * Returns { close(), lastEventId() }.
 */
export function openStream({ url, lastEventId = null, onEvent, onState }) {
  const stop = new AbortController();
  let lastId = lastEventId;
  let attempt = 0;
  (async () => {
    while (!stop.signal.aborted) {
      onState(attempt === 0 ? 'connecting' : 'reconnecting', { attempt });
      const request = new AbortController();
      const onStop = () => request.abort();
      stop.signal.addEventListener('abort', onStop, { once: true });
      try {
        const target = lastId === null ? url : `${url}${url.includes('?') ? '&' : '?'}lastEventId=${encodeURIComponent(lastId)}`;
        const headers = { accept: 'text/event-stream' };
        if (lastId !== null) headers['last-event-id'] = String(lastId);
        const res = await fetch(target, { headers, cache: 'no-store', signal: request.signal });
        const type = res.headers.get('content-type') ?? '';
        if (res.status === 404 || res.status === 405 || (res.ok && !type.startsWith('text/event-stream'))) {
          onState('unavailable', { status: res.status });
          return;
        }
        if (!res.ok || res.body === null) throw new Error(`HTTP ${res.status}`);
        attempt = 0;
        onState('live', {});
        await readEvents(
          res.body,
          (ev) => {
            if (ev.id !== undefined && ev.id !== '') lastId = ev.id;
            onEvent(ev);
          },
          request.signal,
        );
      } catch {
        // a network error, the gateway went away, or close(): reconnect unless closed
      } finally {
        stop.signal.removeEventListener('abort', onStop);
      }
      if (stop.signal.aborted) return;
      attempt++;
      onState('reconnecting', { attempt });
      await sleep(Math.min(5000, 200 * 2 ** Math.min(attempt, 5)) * (0.5 + Math.random() / 2), stop.signal);
    }
  })();
  return {
    close: () => stop.abort(),
    lastEventId: () => lastId,
  };
}

import { mkdtempSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMessageLog } from '../../gateway/log/message-log.js';
import { tailLog } from '../../gateway/log/tail-reader.js';
import { RECORD_TYPES } from '../../gateway/log/types.js';
import { alertId, decodeAlertTransition, encodeAlertTransition, severityRank, toAlertEvent, type AlertTransition, type Severity } from '../../gateway/wire/alert.js';

/**
 * The input of the push proxy in tests: the gateway's SSE stream contract (GET /v1/streams/<name>,
 * `id:` = log offset, `event: alert` with the AlertEvent JSON, `earliest`, resume with Last-Event-ID
 * or ?lastEventId=, filters kind/device/rule/minSeverity) served from a real message log. Not the
 * gateway's hub: only what a stream client sees of it.
 */
export interface SseSource {
  readonly url: string;
  /** Appends an alert transition to the log (durable) and returns its offset = its SSE id. */
  append(over?: Partial<AlertTransition>): Promise<number>;
  /** Open stream connections now. */
  open(): number;
  /** Every stream request: its path and query, and the id it resumed after. */
  readonly requests: { path: string; lastEventId: string | null }[];
  /** Ends every open stream (as an `overflow` close or a gateway restart would). */
  dropAll(): void;
  close(): Promise<void>;
}

let counter = 0;
/** A FIRING threshold alert with a fresh episode id; `over` replaces fields. */
export function testAlert(over: Partial<AlertTransition> = {}): AlertTransition {
  const n = ++counter;
  const deviceId = over.deviceId ?? `athlete-${n % 5}`;
  const base: AlertTransition = {
    v: 1,
    id: alertId('hr-high', `heart-rate/${deviceId}`, 1_790_000_000_000 + n),
    rule: 'hr-high',
    ruleKind: 'threshold',
    severity: 'critical',
    state: 'FIRING',
    kind: 'heart-rate',
    deviceId,
    group: {},
    value: 180 + (n % 10),
    threshold: 175,
    windowStart: 1_790_000_000_000,
    windowEnd: 1_790_000_010_000,
    episodeStart: 1_790_000_000_000 + n,
    firedAt: 1_790_000_010_000,
    resolvedAt: null,
    summary: `heart rate of ${deviceId} above 175 bpm (alert ${n})`,
  };
  return { ...base, ...over };
}

export async function startSseSource(dir = mkdtempSync(join(tmpdir(), 'pg-sse-src-'))): Promise<SseSource> {
  const log = await createMessageLog({ dir, groupCommitIntervalMs: 0 });
  await log.start();
  const requests: { path: string; lastEventId: string | null }[] = [];
  const openResponses = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/v1\/streams\/([^/]+)$/.exec(url.pathname);
    if (req.method !== 'GET' || m === null || !['alerts', 'critical'].includes(m[1]!)) return void res.writeHead(404).end();
    const q = url.searchParams;
    for (const k of q.keys()) if (!['kind', 'device', 'rule', 'minSeverity', 'where', 'lastEventId'].includes(k)) return void res.writeHead(400).end(`unknown parameter ${k}`);
    const header = req.headers['last-event-id'];
    const last = typeof header === 'string' ? header : q.get('lastEventId');
    requests.push({ path: `${url.pathname}${url.search}`, lastEventId: last });
    if (last !== null && !/^[0-9]+$/.test(last)) return void res.writeHead(400).end('bad Last-Event-ID');
    const from = last === null ? log.nextOffset : Number(last) + 1;
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write(': stream\n\n');
    openResponses.add(res);
    res.on('close', () => openResponses.delete(res));
    const wanted = (a: AlertTransition): boolean =>
      (q.get('kind') ?? a.kind) === a.kind &&
      (q.get('device') ?? a.deviceId) === a.deviceId &&
      (q.get('rule') ?? a.rule) === a.rule &&
      severityRank(a.severity) >= severityRank((q.get('minSeverity') ?? 'info') as Severity);
    void (async () => {
      for await (const item of tailLog(log, from, { signal: abort.signal, types: [RECORD_TYPES.alert] })) {
        if (item.kind === 'earliest') res.write(`event: earliest\ndata: ${JSON.stringify(item)}\n\n`);
        if (item.kind !== 'record') continue;
        const t = decodeAlertTransition(item.record.payload);
        if (!wanted(t)) continue;
        if (!res.write(`id: ${item.record.offset}\nevent: alert\ndata: ${JSON.stringify(toAlertEvent(t, item.record.offset))}\n\n`)) {
          await new Promise((r) => res.once('drain', r).once('close', r));
        }
      }
    })().catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    append: (over) => log.appendDurable(RECORD_TYPES.alert, encodeAlertTransition(testAlert(over))),
    open: () => openResponses.size,
    requests,
    dropAll: () => {
      for (const r of openResponses) r.destroy();
    },
    async close() {
      for (const r of openResponses) r.destroy();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      await log.close();
    },
  };
}

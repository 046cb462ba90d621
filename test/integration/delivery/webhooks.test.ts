import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhookSignature } from '../../../gateway/delivery/webhook.js';
import { decodeDeadLetter } from '../../../gateway/log/dead-letter.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { decodeAlertTransition, type AlertEvent } from '../../../gateway/wire/alert.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { readLogRecords } from '../../helpers/log-records.js';
import { eventually, sampleOr0, scrape } from '../../helpers/metrics.js';

/**
 * Outbound webhooks through a real gateway and real local HTTP receivers: the receivers fail the
 * first attempts (500s, a hang past timeoutMs, a 400, or always), check every signature and
 * keep every request. Two heart-rate episodes give four transitions.
 */
const SECRET = 'webhook-secret-0123456789';
const RULE = { id: 'hr-spike', kind: 'threshold', severity: 'critical', sensorKind: 'heart-rate', window: '10s', aggregate: 'bpm_max', above: 200, clear: 190 };

interface Request {
  readonly key: string;
  readonly signatureValid: boolean;
  readonly body: string;
  readonly status: number;
}

/** A receiver answering `answer(attemptOfThisKey)`: a status, or 'hang' (never answers). */
function receiver(answer: (attempt: number) => number | 'hang'): { server: Server; requests: Request[]; url: () => string } {
  const requests: Request[] = [];
  const attempts = new Map<string, number>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const key = String(req.headers['idempotency-key']);
      const attempt = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, attempt);
      const signatureValid = verifyWebhookSignature(SECRET, req.headers['pulsegate-signature'] as string | undefined, raw, Math.floor(Date.now() / 1000));
      const a = answer(attempt);
      requests.push({ key, signatureValid, body: raw.toString('utf8'), status: a === 'hang' ? 0 : a });
      if (a !== 'hang') res.writeHead(a, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  return { server, requests, url: () => `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook` };
}

async function publishReadings(client: MqttClient, deviceId: string, seq: { n: number }, from: number, to: number, bpm: number): Promise<void> {
  for (let ts = from; ts < to; ts += 200) await client.publishAsync(`sensors/heart-rate/${deviceId}`, JSON.stringify({ seq: seq.n++, ts, bpm }), { qos: 1 });
}

/** A spike in the second 10 s window of `base`, resolved in the third: one FIRING, one RESOLVED. */
async function episode(client: MqttClient, deviceId: string, base: number): Promise<void> {
  const seq = { n: 1 };
  await publishReadings(client, deviceId, seq, base, base + 10_000, 80);
  await publishReadings(client, deviceId, seq, base + 10_000, base + 20_000, 210);
  await publishReadings(client, deviceId, seq, base + 20_000, base + 30_200, 80);
}

describe('webhooks', () => {
  const flaky = receiver((attempt) => (attempt <= 2 ? 500 : 204));
  const slow = receiver((attempt) => (attempt === 1 ? 'hang' : 200));
  const down = receiver(() => 503);
  const refusing = receiver(() => 400);
  const filtered = receiver(() => 200);
  const servers = [flaky, slow, down, refusing, filtered];
  let gw: TestGateway;
  let client: MqttClient;

  beforeAll(async () => {
    for (const r of servers) await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    const secretFile = join(mkdtempSync(join(tmpdir(), 'pg-hook-')), 'secret');
    writeFileSync(secretFile, SECRET + '\n');
    const hook = (name: string, url: string, extra: Record<string, unknown> = {}) => ({ name, url, secretFile, retryInitialMs: 20, retryMaxMs: 100, timeoutMs: 2000, ...extra });
    gw = await startTestGateway({
      alerts: { defaultRules: false, rules: [RULE] },
      delivery: {
        webhooks: [
          hook('flaky', flaky.url(), { maxAttempts: 5 }),
          hook('slow', slow.url(), { timeoutMs: 300 }),
          hook('down', down.url(), { maxAttempts: 3 }),
          hook('refusing', refusing.url()),
          hook('filtered', filtered.url(), { filter: { sensorKinds: ['bridge'] } }),
        ],
      },
    });
    client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    const base = Math.floor((Date.now() - 10 * 60_000) / 10_000) * 10_000;
    await episode(client, 'athlete-1', base);
    await episode(client, 'athlete-2', base + 60_000);
  });
  afterAll(async () => {
    client?.end(true);
    await gw?.dispose();
    for (const r of servers) {
      r.server.closeAllConnections();
      await new Promise((resolve) => r.server.close(resolve));
    }
  });

  const metric = async (name: string, labels: Record<string, string>) => sampleOr0(await scrape(gw.ports.http), name, labels);
  const accepted = (r: { requests: Request[] }) => r.requests.filter((q) => q.status >= 200 && q.status < 300);

  it('should deliver every alert through failing first attempts, signed, duplicates only with the same Idempotency-Key', async () => {
    await eventually(() => metric('pulsegate_webhook_delivered_total', { webhook: 'flaky' }), (n) => n === 4);
    const ok = accepted(flaky);
    const events = ok.map((q) => JSON.parse(q.body) as AlertEvent);
    expect(events.map((e) => `${e.deviceId}:${e.state}`)).toEqual(['athlete-1:FIRING', 'athlete-1:RESOLVED', 'athlete-2:FIRING', 'athlete-2:RESOLVED']);
    expect(ok.map((q) => q.key)).toEqual(events.map((e) => `${e.id}:${e.state}`));
    expect(events.every((e, i) => i === 0 || e.offset > events[i - 1]!.offset)).toBe(true);
    expect(flaky.requests.every((q) => q.signatureValid)).toBe(true);
    // Three attempts per transition (two 500s), every attempt of one key with the same body.
    expect(flaky.requests).toHaveLength(12);
    for (const key of new Set(flaky.requests.map((q) => q.key))) expect(new Set(flaky.requests.filter((q) => q.key === key).map((q) => q.body)).size).toBe(1);
    expect(await metric('pulsegate_webhook_failed_attempts_total', { webhook: 'flaky', reason: 'status_500' })).toBe(8);
    expect(await metric('pulsegate_webhook_latency_seconds_count', { webhook: 'flaky' })).toBe(4);
  });

  it('should retry a POST that gets no answer within timeoutMs', async () => {
    await eventually(() => metric('pulsegate_webhook_delivered_total', { webhook: 'slow' }), (n) => n === 4);
    expect(await metric('pulsegate_webhook_failed_attempts_total', { webhook: 'slow', reason: 'timeout' })).toBe(4);
    expect(new Set(accepted(slow).map((q) => q.key)).size).toBe(4);
  });

  it('should dead-letter an alert after maxAttempts, and one refused with a 4xx at once, and go on', async () => {
    await eventually(() => metric('pulsegate_webhook_dead_lettered_total', { webhook: 'down' }), (n) => n === 4);
    await eventually(() => metric('pulsegate_webhook_dead_lettered_total', { webhook: 'refusing' }), (n) => n === 4);
    expect(down.requests).toHaveLength(12);
    expect(refusing.requests).toHaveLength(4);
    expect(await metric('pulsegate_webhook_failed_attempts_total', { webhook: 'down', reason: 'status_503' })).toBe(12);
    expect(await metric('pulsegate_webhook_delivered_total', { webhook: 'down' })).toBe(0);
  });

  it('should pass over alerts its filter does not take', async () => {
    await eventually(() => metric('pulsegate_webhook_filtered_total', { webhook: 'filtered' }), (n) => n === 4);
    expect(filtered.requests).toEqual([]);
  });

  it('should keep each dead-lettered transition in the log', async () => {
    await gw.close();
    const letters = (await readLogRecords(join(gw.dataDir, 'log'))).filter((r) => r.type === RECORD_TYPES.deadLetter).map((r) => decodeDeadLetter(r.payload));
    const byTopic = (topic: string) => letters.filter((d) => d.topic === topic);
    expect(byTopic('webhook/down')).toHaveLength(4);
    expect(byTopic('webhook/refusing')).toHaveLength(4);
    expect(letters.every((d) => d.reason === 'webhook-undeliverable')).toBe(true);
    expect(byTopic('webhook/down').map((d) => decodeAlertTransition(d.payload).state)).toEqual(['FIRING', 'RESOLVED', 'FIRING', 'RESOLVED']);
    expect(byTopic('webhook/down')[0]!.detail).toContain('answered 503 (attempt 3 of 3: giving up)');
  });
});

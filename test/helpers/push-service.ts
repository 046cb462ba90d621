import { createECDH, randomBytes, type ECDH } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { importJWK, jwtVerify } from 'jose';
import type { TestPki } from './tls-certs.js';

const ece = createRequire(import.meta.url)('http_ece') as { decrypt(buf: Buffer, params: Record<string, unknown>): Buffer };

/** What the push service received, after verifying the VAPID JWT and decrypting the body. */
export interface ReceivedPush {
  readonly subscription: string;
  /** The status it answered. */
  readonly status: number;
  readonly at: number;
  readonly ttl: string | undefined;
  readonly urgency: string | undefined;
  readonly topic: string | undefined;
  /** The decrypted payload (null when verification or decryption failed: see `error`). */
  readonly payload: string | null;
  readonly error: string | null;
}

export interface TestSubscription {
  /** PushSubscription.toJSON() of a browser: what the page hands over. */
  readonly json: { endpoint: string; expirationTime: null; keys: { p256dh: string; auth: string } };
  readonly ecdh: ECDH;
  readonly auth: Buffer;
}

export interface Answer {
  readonly status: number;
  /** Retry-After header value. */
  readonly retryAfter?: string;
}

export interface LocalPushService {
  readonly origin: string;
  /** A new subscription: ECDH P-256 key pair + 16-byte auth secret, endpoint https://127.0.0.1:<port>/push/<name>. */
  subscribe(name: string): TestSubscription;
  /** The next pushes to `name` get these answers, in order (then 201 again). */
  answerNext(name: string, ...answers: Answer[]): void;
  /** Pushes to `name` are received but not answered until the returned function is called. */
  hold(name: string): () => void;
  /** Pushes to `name` received and waiting for an answer (held). */
  waiting(name: string): number;
  /** Every push received, in arrival order. */
  readonly received: ReceivedPush[];
  /** Decrypted payloads of the 201-answered pushes to `name`, parsed. */
  delivered(name: string): Record<string, unknown>[];
  close(): Promise<void>;
}

/**
 * A local RFC 8030 push service over https: checks the VAPID JWT (RFC 8292: ES256, aud = this
 * origin, exp within 24 h, sub) with jose against the `k` key, decrypts the aes128gcm body
 * (RFC 8291) with http_ece and the subscription's private key, and answers 201 (or what it was told).
 */
export async function startLocalPushService(pki: TestPki, options: { expectedVapidKey?: string } = {}): Promise<LocalPushService> {
  const subs = new Map<string, TestSubscription>();
  const scripted = new Map<string, Answer[]>();
  const received: ReceivedPush[] = [];
  const holds = new Map<string, Promise<void>>();
  const waitingCount = new Map<string, number>();
  let origin = '';
  const server = createServer({ cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const name = /^\/push\/([^/]+)$/.exec(req.url ?? '')?.[1] ?? '';
        const sub = subs.get(name);
        let payload: string | null = null;
        let error: string | null = null;
        try {
          if (req.method !== 'POST' || sub === undefined) throw new Error(`no subscription at ${req.url}`);
          payload = await verifyAndDecrypt(req.headers, Buffer.concat(chunks), sub, origin, options.expectedVapidKey);
        } catch (err) {
          error = (err as Error).message;
        }
        const gate = holds.get(name);
        if (gate !== undefined) {
          waitingCount.set(name, (waitingCount.get(name) ?? 0) + 1);
          await gate;
          waitingCount.set(name, (waitingCount.get(name) ?? 1) - 1);
        }
        const answer = error !== null ? { status: sub === undefined ? 404 : 400 } : (scripted.get(name)?.shift() ?? { status: 201 });
        received.push({
          subscription: name,
          status: answer.status,
          at: Date.now(),
          ttl: req.headers['ttl'] as string | undefined,
          urgency: req.headers['urgency'] as string | undefined,
          topic: req.headers['topic'] as string | undefined,
          payload,
          error,
        });
        const headers: Record<string, string> = {};
        if (answer.retryAfter !== undefined) headers['retry-after'] = answer.retryAfter;
        if (answer.status === 201) headers['location'] = `${origin}/message/${randomBytes(8).toString('hex')}`;
        res.writeHead(answer.status, headers).end();
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    received,
    subscribe(name) {
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const auth = randomBytes(16);
      const s: TestSubscription = {
        json: { endpoint: `${origin}/push/${name}`, expirationTime: null, keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') } },
        ecdh,
        auth,
      };
      subs.set(name, s);
      return s;
    },
    hold(name) {
      let release!: () => void;
      holds.set(name, new Promise<void>((resolve) => (release = resolve)));
      return () => {
        holds.delete(name);
        release();
      };
    },
    waiting: (name) => waitingCount.get(name) ?? 0,
    answerNext(name, ...answers) {
      scripted.set(name, [...(scripted.get(name) ?? []), ...answers]);
    },
    delivered: (name) => received.filter((r) => r.subscription === name && r.status === 201 && r.payload !== null).map((r) => JSON.parse(r.payload!) as Record<string, unknown>),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function verifyAndDecrypt(headers: Record<string, string | string[] | undefined>, body: Buffer, sub: TestSubscription, origin: string, expectedKey: string | undefined): Promise<string> {
  if (headers['content-encoding'] !== 'aes128gcm') throw new Error(`Content-Encoding must be aes128gcm, got ${String(headers['content-encoding'])}`);
  if (headers['ttl'] === undefined || !/^[0-9]+$/.test(String(headers['ttl']))) throw new Error('TTL header missing (RFC 8030 section 5.2)');
  const m = /^vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)$/.exec(String(headers['authorization'] ?? ''));
  if (m === null) throw new Error(`Authorization is not "vapid t=..., k=...": ${String(headers['authorization'])}`);
  const [, token, k] = m as unknown as [string, string, string];
  if (expectedKey !== undefined && k !== expectedKey) throw new Error('VAPID key k is not the application server key of the subscription');
  const point = Buffer.from(k, 'base64url');
  if (point.length !== 65 || point[0] !== 4) throw new Error('k is not an uncompressed P-256 point');
  const key = await importJWK({ kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') }, 'ES256');
  const { payload } = await jwtVerify(token, key, { algorithms: ['ES256'], audience: origin });
  const now = Math.floor(Date.now() / 1000);
  if (typeof payload.exp !== 'number' || payload.exp > now + 86_400) throw new Error(`exp must be within 24 h (RFC 8292 section 2), got ${payload.exp}`);
  if (typeof payload.sub !== 'string' || !/^(mailto:|https:)/.test(payload.sub)) throw new Error(`sub must be a mailto: or https: URI, got ${String(payload.sub)}`);
  return ece.decrypt(body, { version: 'aes128gcm', privateKey: sub.ecdh, authSecret: sub.auth.toString('base64url') }).toString('utf8');
}

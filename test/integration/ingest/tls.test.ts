import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret } from '../../../gateway/ingest/credentials.js';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';
import { eventually, sample } from '../../helpers/metrics.js';
import { hasOpenssl, makeTestPki, type TestPki } from '../../helpers/tls-certs.js';

const run = promisify(execFile);
if (!hasOpenssl()) throw new Error('these tests need the openssl CLI (Debian: apt install openssl)');

/** A real HTTPS GET that trusts only `ca`. */
function httpsGet(port: number, path: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, ca, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

type Outcome = { connected: true; client: MqttClient } | { connected: false; error: string; returnCode: number | null };

/** Connects once (no retries) and tells how it ended: CONNACK accepted, refused, or no MQTT at all. */
function attempt(url: string, opts: IClientOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    // Client ids are bound to the device (mqtt.clientIdPolicy): a password login uses its username.
    const clientId = opts.clientId ?? (typeof opts.username === 'string' ? opts.username : undefined);
    const client = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...opts, ...(clientId === undefined ? {} : { clientId }) });
    let settled = false;
    const settle = (o: Outcome): void => {
      if (settled) return;
      settled = true;
      if (!o.connected) client.end(true);
      resolve(o);
    };
    client.once('connect', () => settle({ connected: true, client }));
    client.once('error', (err: Error & { code?: number | string }) => settle({ connected: false, error: err.message, returnCode: typeof err.code === 'number' ? err.code : null }));
    client.once('close', () => settle({ connected: false, error: 'closed before CONNACK', returnCode: null }));
  });
}

const reading = (seq: number) => JSON.stringify({ seq, ts: Date.now(), bpm: 70 });

let pki: TestPki;
let caPem: Buffer;
const pem = (f: string) => readFileSync(f);
beforeAll(() => {
  pki = makeTestPki();
  caPem = pem(pki.ca.cert);
});
afterAll(() => rmSync(pki.dir, { recursive: true, force: true }));

describe('TLS with required client certificates (mqtts, wss, https)', () => {
  let gw: TestGateway;
  let devA: { cert: Buffer; key: Buffer };
  const metrics = async () => (await httpsGet(gw.ports.http, '/metrics', caPem)).body;
  const received = async () => sample(await metrics(), 'pulsegate_readings_received_total', { kind: 'heart-rate' });
  const unauthorized = async () => sample(await metrics(), 'pulsegate_readings_rejected_total', { reason: 'unauthorized' });
  const handshakeFailures = async (listener: string) => sample(await metrics(), 'pulsegate_tls_handshake_failures_total', { listener });

  beforeAll(async () => {
    const a = pki.client('dev-a', 'dev-a');
    devA = { cert: pem(a.cert), key: pem(a.key) };
    gw = await startTestGateway({
      mqtt: { allowAnonymous: false, tlsPort: 0, wssPort: 0, clientCertificates: 'required' },
      http: { tls: true },
      tls: { certFile: pki.server.cert, keyFile: pki.server.key, caFile: pki.ca.cert },
    });
  });
  afterAll(async () => {
    await gw?.dispose();
  });

  it('a device with a client certificate CN=dev-a publishes on its own topic without a password, over mqtts and wss', async () => {
    const before = await received();
    for (const url of [`mqtts://127.0.0.1:${gw.ports.mqtts}`, `wss://127.0.0.1:${gw.ports.wss}`]) {
      const o = await attempt(url, { ca: caPem, ...devA, clientId: `dev-a:${url.slice(0, 4)}` });
      expect(o.connected, url).toBe(true);
      if (!o.connected) continue;
      await o.client.publishAsync('sensors/heart-rate/dev-a', reading(url.startsWith('wss') ? 2 : 1), { qos: 1 });
      await o.client.endAsync();
    }
    await eventually(received, (n) => n === before + 2);
  });

  it('a certificate for dev-a does not let it publish as dev-b: rejected as unauthorized', async () => {
    const before = { unauthorized: await unauthorized(), received: await received() };
    const o = await attempt(`mqtts://127.0.0.1:${gw.ports.mqtts}`, { ca: caPem, ...devA, clientId: 'dev-a' });
    expect(o.connected).toBe(true);
    if (!o.connected) return;
    await o.client.publishAsync('sensors/heart-rate/dev-b', reading(1), { qos: 1 });
    await o.client.endAsync();
    expect(await unauthorized()).toBe(before.unauthorized + 1);
    expect(await received()).toBe(before.received);
  });

  it('no client certificate when required: the TLS handshake fails (no CONNACK), on mqtts and wss', async () => {
    const before = { mqtts: await handshakeFailures('mqtts'), wss: await handshakeFailures('wss') };
    const mqtts = await attempt(`mqtts://127.0.0.1:${gw.ports.mqtts}`, { ca: caPem });
    const wss = await attempt(`wss://127.0.0.1:${gw.ports.wss}`, { ca: caPem });
    expect(mqtts.connected).toBe(false);
    expect(wss.connected).toBe(false);
    await eventually(() => handshakeFailures('mqtts'), (n) => n === before.mqtts + 1);
    await eventually(() => handshakeFailures('wss'), (n) => n === before.wss + 1);
  });

  it('a client certificate signed by another CA: the TLS handshake fails', async () => {
    const before = await handshakeFailures('mqtts');
    const rogueCa = pki.otherCa('rogue');
    const rogue = pki.client('rogue-dev-a', 'dev-a', rogueCa);
    const o = await attempt(`mqtts://127.0.0.1:${gw.ports.mqtts}`, { ca: caPem, cert: pem(rogue.cert), key: pem(rogue.key) });
    expect(o.connected).toBe(false);
    await eventually(() => handshakeFailures('mqtts'), (n) => n === before + 1);
  });

  it('a trusted certificate whose CN is not a device id: CONNACK refused (not authorized)', async () => {
    const bad = pki.client('bad-cn', 'bad device!');
    const o = await attempt(`mqtts://127.0.0.1:${gw.ports.mqtts}`, { ca: caPem, cert: pem(bad.cert), key: pem(bad.key) });
    expect(o.connected).toBe(false);
    if (!o.connected) expect(o.returnCode).toBe(5);
  });

  it('a username other than the certificate\'s device id: CONNACK refused', async () => {
    const o = await attempt(`mqtts://127.0.0.1:${gw.ports.mqtts}`, { ca: caPem, ...devA, username: 'dev-b', password: 'whatever' });
    expect(o.connected).toBe(false);
    if (!o.connected) expect(o.returnCode).toBe(5);
    const same = await attempt(`mqtts://127.0.0.1:${gw.ports.mqtts}`, { ca: caPem, ...devA, username: 'dev-a' });
    expect(same.connected).toBe(true);
    if (same.connected) await same.client.endAsync();
  });

  it('a device known only by its certificate may subscribe to alerts, not to other devices\' readings', async () => {
    const o = await attempt(`mqtts://127.0.0.1:${gw.ports.mqtts}`, { ca: caPem, ...devA, clientId: 'dev-a' });
    expect(o.connected).toBe(true);
    if (!o.connected) return;
    // [MQTT-3.9.3] a refused filter is granted 0x80, which mqtt.js turns into an error.
    const granted = await o.client.subscribeAsync('alerts/#', { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);
    await expect(o.client.subscribeAsync('sensors/#', { qos: 1 })).rejects.toThrow(/Subscribe error/);
    await o.client.endAsync();
  });

  it('mosquitto_pub with --cafile/--cert/--key publishes; without a certificate, or trusting another CA, it fails', async () => {
    const before = await received();
    const a = pki.client('mosq-dev-a', 'dev-a');
    const port = String(gw.ports.mqtts);
    const base = ['-h', '127.0.0.1', '-p', port, '-q', '1', '-V', 'mqttv311', '-i', 'dev-a', '-t', 'sensors/heart-rate/dev-a'];
    await run('mosquitto_pub', [...base, '--cafile', pki.ca.cert, '--cert', a.cert, '--key', a.key, '-m', reading(10)]);
    await eventually(received, (n) => n === before + 1);
    await expect(run('mosquitto_pub', [...base, '--cafile', pki.ca.cert, '-m', reading(11)])).rejects.toThrow();
    const other = pki.otherCa('other-server-ca');
    await expect(run('mosquitto_pub', [...base, '--cafile', other.cert, '--cert', a.cert, '--key', a.key, '-m', reading(12)])).rejects.toThrow();
    expect(await received()).toBe(before + 1);
  });

  it('the HTTP API answers over HTTPS (healthz, readings) with the server certificate, and not in plain HTTP', async () => {
    const health = await httpsGet(gw.ports.http, '/healthz', caPem);
    expect(health).toEqual({ status: 200, body: JSON.stringify({ status: 'ok' }) });
    const readings = await eventually(
      () => httpsGet(gw.ports.http, '/v1/readings?kind=heart-rate&device=dev-a&from=now-1h', caPem),
      (r) => r.status === 200 && (JSON.parse(r.body) as { count: number }).count >= 1,
    );
    expect((JSON.parse(readings.body) as { readings: { deviceId: string }[] }).readings.every((r) => r.deviceId === 'dev-a')).toBe(true);
    await expect(httpsGet(gw.ports.http, '/healthz', pem(pki.otherCa('not-the-server-ca').cert))).rejects.toThrow();
    await expect(fetch(`http://127.0.0.1:${gw.ports.http}/healthz`)).rejects.toThrow();
  });
});

describe('TLS with optional client certificates and passwords', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    const file = join(pki.dir, 'devices.yaml');
    writeFileSync(file, `devices:\n  - username: pw-1\n    secret: "${await hashSecret('pw-1-secret')}"\n`);
    gw = await startTestGateway({
      mqtt: { allowAnonymous: false, credentialsFile: file, tlsPort: 0, clientCertificates: 'optional' },
      tls: { certFile: pki.server.cert, keyFile: pki.server.key, caFile: pki.ca.cert },
    });
  });
  afterAll(async () => {
    await gw?.dispose();
  });

  it('a device without a certificate logs in with its password over mqtts; a wrong password is refused', async () => {
    const ok = await attempt(`mqtts://127.0.0.1:${gw.ports.mqtts}`, { ca: caPem, username: 'pw-1', password: 'pw-1-secret' });
    expect(ok.connected).toBe(true);
    if (ok.connected) await ok.client.endAsync();
    const bad = await attempt(`mqtts://127.0.0.1:${gw.ports.mqtts}`, { ca: caPem, username: 'pw-1', password: 'nope-nope' });
    expect(bad.connected).toBe(false);
    if (!bad.connected) expect(bad.returnCode).toBe(4);
    const anonymous = await attempt(`mqtts://127.0.0.1:${gw.ports.mqtts}`, { ca: caPem });
    expect(anonymous.connected).toBe(false);
  });

  it('a device with a trusted certificate needs no password; one signed by another CA is refused at CONNACK', async () => {
    const a = pki.client('opt-dev-a', 'dev-a');
    const ok = await attempt(`mqtts://127.0.0.1:${gw.ports.mqtts}`, { ca: caPem, cert: pem(a.cert), key: pem(a.key), clientId: 'dev-a' });
    expect(ok.connected).toBe(true);
    if (ok.connected) await ok.client.endAsync();
    const rogue = pki.client('opt-rogue', 'pw-1', pki.otherCa('opt-rogue-ca'));
    const refused = await attempt(`mqtts://127.0.0.1:${gw.ports.mqtts}`, { ca: caPem, cert: pem(rogue.cert), key: pem(rogue.key), username: 'pw-1', password: 'pw-1-secret' });
    expect(refused.connected).toBe(false);
    if (!refused.connected) expect(refused.returnCode).toBe(5);
  });

  it('a client that does not trust the gateway\'s CA cannot connect', async () => {
    const o = await attempt(`mqtts://127.0.0.1:${gw.ports.mqtts}`, { ca: pem(pki.otherCa('client-side-ca').cert), username: 'pw-1', password: 'pw-1-secret' });
    expect(o.connected).toBe(false);
    if (!o.connected) expect(o.error).toMatch(/certificate/i);
  });
});

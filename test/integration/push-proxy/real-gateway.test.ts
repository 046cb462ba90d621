import mqtt from 'mqtt';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AlertEvent } from '../../../gateway/wire/alert.js';
import { startTestGateway } from '../../helpers/gateway.js';
import { startTestPushProxy } from '../../helpers/push-proxy.js';
import { startLocalPushService } from '../../helpers/push-service.js';
import { makeTestPki, type TestPki } from '../../helpers/tls-certs.js';
import { waitForValue } from '../../helpers/wait.js';

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/**
 * The push proxy against the gateway itself (its SSE hub and alert engine), not a stand-in:
 * real heart-rate readings over MQTT raise real alerts, which reach the phone's push service
 * decrypted, and the taken-back hand-off resumes the gateway's stream with no gap and no repeat.
 */
describe('push proxy with the real gateway', () => {
  it('should push the alerts the gateway raises after the handed-over id, and the stream resumes after the last one pushed', async () => {
    const gw = await startTestGateway({ http: { allowAnonymous: true }, alerts: { rules: [] } });
    cleanups.push(() => gw.dispose());
    const base = `http://127.0.0.1:${gw.ports.http}`;
    const push = await startLocalPushService(pki);
    cleanups.push(() => push.close());
    const proxy = await startTestPushProxy({ gatewayUrl: base, pki });
    cleanups.push(() => proxy.close());
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${gw.ports.mqtt}`, { protocolVersion: 4, reconnectPeriod: 0 });
    cleanups.push(() => client.endAsync());

    let seq = 0;
    const t0 = Math.floor((Date.now() - 300_000) / 10_000) * 10_000;
    // Window w of 10 s at `bpm`; the first reading of the next window closes it.
    const windowOf = async (w: number, bpm: number) => {
      for (let i = 0; i < 5; i++) await client.publishAsync('sensors/heart-rate/phone-athlete', JSON.stringify({ seq: ++seq, ts: t0 + w * 10_000 + i * 2000, bpm }), { qos: 1 });
    };
    const alertsLogged = async (): Promise<AlertEvent[]> => {
      const res = await fetch(`${base}/v1/alerts/poll?after=0&waitMs=0&limit=100`);
      return ((await res.json()) as { events: AlertEvent[] }).events ?? [];
    };
    // A first episode fires while the phone is awake: the last id it saw is that FIRING's offset.
    await windowOf(0, 210);
    await windowOf(1, 80);
    const seen = await waitForValue(alertsLogged, (a) => a.length >= 1, { what: 'the first FIRING' });
    const lastSeen = seen[0]!.offset;
    // Before the page hands over, the episode resolves (window 1 closes): the proxy must push it too.
    await windowOf(2, 215);
    await waitForValue(alertsLogged, (a) => a.length >= 2, { what: 'the first RESOLVED' });

    const sub = push.subscribe('phone');
    const handoff = await proxy.post({ subscription: sub.json, lastEventId: String(lastSeen), stream: 'alerts', filter: {} });
    expect(handoff.status).toBe(201);
    // While it sleeps: a second episode's FIRING and RESOLVED.
    await windowOf(3, 80);
    await windowOf(4, 80);
    const logged = await waitForValue(alertsLogged, (a) => a.length >= 4, { what: 'four transitions' });
    const pushed = await waitForValue(() => push.delivered('phone'), (d) => d.length >= 3, { what: 'the pushes' });
    const after = logged.filter((a) => a.offset > lastSeen);
    expect(pushed.map((p) => String(p['eventId']))).toEqual(after.map((a) => String(a.offset)));
    expect(pushed.map((p) => (p['alert'] as AlertEvent).state)).toEqual(after.map((a) => a.state));
    expect(pushed.map((p) => (p['alert'] as AlertEvent).id)).toEqual(after.map((a) => a.id));

    // The phone wakes: takes the stream back and resumes SSE from the last id pushed; nothing comes twice.
    const back = await proxy.del(String(handoff.body['id']));
    expect(back.body['lastDeliveredEventId']).toBe(String(after.at(-1)!.offset));
    await windowOf(5, 220);
    await windowOf(6, 80);
    const res = await fetch(`${base}/v1/alerts/poll?after=${String(back.body['lastDeliveredEventId'])}&waitMs=5000`);
    const resumed = ((await res.json()) as { events: AlertEvent[] }).events;
    expect(resumed.length).toBeGreaterThan(0);
    expect(resumed.every((a) => a.offset > after.at(-1)!.offset)).toBe(true);
    expect(resumed[0]!.state).toBe('FIRING');
  });
});

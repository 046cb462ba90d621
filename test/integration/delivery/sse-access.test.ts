import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../helpers/random.js';
import { openSse } from '../../helpers/sse-client.js';
import { waitFor } from '../../helpers/wait.js';
import { randomAlert, startHub, type Hub } from './hub-harness.js';

const keys = mkdtempSync(join(tmpdir(), 'pg-jwt-'));
const secret = 'a-test-secret-of-more-than-32-characters!';
const secretFile = join(keys, 'secret');
writeFileSync(secretFile, `${secret}\n`);
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicKeyFile = join(keys, 'public.pem');
writeFileSync(publicKeyFile, ec.publicKey.export({ type: 'spki', format: 'pem' }));
afterAll(() => rmSync(keys, { recursive: true, force: true }));

let hub: Hub | null = null;
afterEach(async () => {
  await hub?.close();
  hub = null;
});

async function hs256(claims: Record<string, unknown>, options: { exp?: string | number; iss?: string; aud?: string; key?: string } = {}): Promise<string> {
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setSubject('viewer-1');
  jwt = jwt.setExpirationTime(options.exp ?? '10m');
  jwt = jwt.setIssuer(options.iss ?? 'pulsegate-test').setAudience(options.aud ?? 'streams');
  return jwt.sign(new TextEncoder().encode(options.key ?? secret));
}

const AUTH = { http: { allowAnonymous: false }, delivery: { auth: { jwtSecretFile: secretFile, jwtPublicKeyFile: publicKeyFile, issuer: 'pulsegate-test', audience: 'streams' }, streams: { icu: { source: 'alerts', kinds: ['heart_rate'] } } } };

describe('SSE access control', () => {
  it('refuses requests outside the token claims with 403, bad or missing tokens with 401, and narrows what a token leaves open', async () => {
    hub = await startHub(AUTH);
    const h = hub;
    const status = async (path: string, token?: string, header = true): Promise<{ status: number; error: string | null }> => {
      const url = h.url(token !== undefined && !header ? `${path}${path.includes('?') ? '&' : '?'}access_token=${token}` : path);
      const c = await openSse(url, token !== undefined && header ? { authorization: `Bearer ${token}` } : {});
      const error = c.status === 200 ? null : (JSON.parse(await c.body) as { error: string }).error;
      c.close();
      return { status: c.status, error };
    };
    const hrOnly = await hs256({ pulsegate: { kinds: ['heart_rate'], devices: ['hr-1*', 'hr-2'], streams: ['alerts', 'icu'] } });
    expect(await status('/v1/streams/alerts')).toEqual({ status: 401, error: 'GW_ERR_TOKEN_INVALID' });
    expect(await status('/v1/streams/alerts', await hs256({}, { key: 'another-secret-of-more-than-32-characters' }))).toEqual({ status: 401, error: 'GW_ERR_TOKEN_INVALID' });
    expect(await status('/v1/streams/alerts', await hs256({}, { exp: Math.floor(Date.now() / 1000) - 60 }))).toEqual({ status: 401, error: 'GW_ERR_TOKEN_INVALID' });
    expect(await status('/v1/streams/alerts', await hs256({}, { iss: 'someone-else' }))).toEqual({ status: 401, error: 'GW_ERR_TOKEN_INVALID' });
    expect(await status('/v1/streams/alerts', await hs256({}, { aud: 'other' }))).toEqual({ status: 401, error: 'GW_ERR_TOKEN_INVALID' });
    // Outside the claims: another kind, a device glob wider than the claim's, a stream not listed.
    expect(await status('/v1/streams/alerts?kind=bridge', hrOnly)).toEqual({ status: 403, error: 'GW_ERR_FORBIDDEN' });
    expect(await status('/v1/streams/alerts?kind=heart_rate,bridge', hrOnly)).toEqual({ status: 403, error: 'GW_ERR_FORBIDDEN' });
    expect(await status('/v1/streams/alerts?device=hr-*', hrOnly)).toEqual({ status: 403, error: 'GW_ERR_FORBIDDEN' });
    expect(await status('/v1/streams/alerts?device=hr-3', hrOnly)).toEqual({ status: 403, error: 'GW_ERR_FORBIDDEN' });
    expect(await status('/v1/streams/windows', hrOnly)).toEqual({ status: 403, error: 'GW_ERR_FORBIDDEN' });
    const poll = await fetch(h.url('/v1/alerts/poll?waitMs=0&kind=bridge'), { headers: { authorization: `Bearer ${hrOnly}` } });
    expect(poll.status).toBe(403);
    // Within: accepted (header or access_token).
    expect(await status('/v1/streams/alerts?kind=heart_rate&device=hr-1-bed-*', hrOnly)).toEqual({ status: 200, error: null });
    expect(await status('/v1/streams/icu', hrOnly, false)).toEqual({ status: 200, error: null });
    // An ES256 token verifies with the public key.
    const es = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).setIssuer('pulsegate-test').setAudience('streams').setExpirationTime('5m').sign(ec.privateKey);
    expect(await status('/v1/streams/windows', es)).toEqual({ status: 200, error: null });

    // What the request leaves open is narrowed to the claims: only heart_rate alerts of hr-1* / hr-2 arrive.
    await h.appendOther();
    const c = await openSse(h.url('/v1/streams/alerts'), { authorization: `Bearer ${hrOnly}` });
    expect(c.status).toBe(200);
    const rand = mulberry32(5);
    const all = [];
    for (let i = 0; i < 120; i++) {
      const t = randomAlert(rand, i);
      all.push({ t, offset: await h.appendAlert(t) });
    }
    const want = all.filter((a) => a.t.kind === 'heart_rate' && (a.t.deviceId.startsWith('hr-1') || a.t.deviceId === 'hr-2')).map((a) => a.offset);
    expect(want.length).toBeGreaterThan(3);
    await waitFor(() => c.events.filter((e) => e.event === 'alert').length >= want.length, { what: 'the narrowed stream' });
    expect(c.events.filter((e) => e.event === 'alert').map((e) => Number(e.id))).toEqual(want);
    c.close();
  });

  it('closes a stream when its token expires', async () => {
    hub = await startHub(AUTH);
    const token = await hs256({}, { exp: Math.floor(Date.now() / 1000) + 2 });
    const c = await openSse(hub.url('/v1/streams/alerts'), { authorization: `Bearer ${token}` });
    expect(c.status).toBe(200);
    await c.ended;
    expect(c.comments).toContain('token expired');
  });

  it('never lets an id or event name carry CR or LF: fields of an alert with line breaks stay inside one data line', async () => {
    hub = await startHub();
    const h = hub;
    await h.appendOther();
    const c = await openSse(h.url('/v1/streams/alerts'));
    const rand = mulberry32(1);
    const evil = { ...randomAlert(rand, 0), rule: 'r\r\nid: 999\r\nevent: forged', deviceId: 'd\nevent: x\n\ndata: y', group: { lane: '1\r\r\n' }, summary: 'one line' };
    const offset = await h.appendAlert(evil);
    await waitFor(() => c.events.length > 0);
    expect(c.events).toHaveLength(1);
    const e = c.events[0]!;
    expect(e.id).toBe(String(offset));
    expect(e.event).toBe('alert');
    expect(e.raw.split('\n').map((l) => l.split(':')[0])).toEqual(['id', 'event', 'data']);
    expect(JSON.parse(e.data)).toEqual({ ...evil, offset });
    c.close();
  });
});

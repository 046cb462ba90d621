import { afterEach, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.js';

let gw: TestGateway | null = null;
afterEach(async () => {
  await gw?.dispose();
  gw = null;
});

async function get(query: string): Promise<{ status: number; body: { alerts?: unknown[]; error?: unknown; message?: string } }> {
  const res = await fetch(`http://127.0.0.1:${gw!.ports.http}/v1/alerts${query}`);
  return { status: res.status, body: (await res.json()) as { alerts?: unknown[]; message?: string } };
}

describe('GET /v1/alerts parameters', () => {
  it('should refuse a device glob longer than a device id can be, a repeated or unknown parameter and an unknown severity, each naming it', async () => {
    gw = await startTestGateway({ alerts: { rules: [] } });
    expect((await get('?device=hr-*&minSeverity=warning')).status).toBe(200);
    // A glob is matched against every firing alert: its length bounds the work of one request.
    const long = await get(`?device=${'*a'.repeat(200)}`);
    expect(long.status).toBe(400);
    expect(JSON.stringify(long.body)).toMatch(/device/);
    const twice = await get('?rule=a&rule=b');
    expect(twice.status).toBe(400);
    expect(JSON.stringify(twice.body)).toMatch(/rule/);
    const unknown = await get('?limit=5');
    expect(unknown.status).toBe(400);
    const sev = await get('?severity=fatal');
    expect(sev.status).toBe(400);
    expect(JSON.stringify(sev.body)).toMatch(/severity/);
  });
});

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { isGatewayError } from '../../../gateway/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'pg-config-'));
function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('config loader', () => {
  it('should fill in defaults and freeze the result', () => {
    const c = loadConfig({ env: {} });
    expect(c.mqtt.port).toBe(1883);
    expect(c.http.port).toBe(8080);
    expect(c.mqtt.allowAnonymous).toBe(false);
    expect(c.log.dir.endsWith('/data/log')).toBe(true);
    expect(Object.isFrozen(c.mqtt)).toBe(true);
  });

  it('should list every problem of a bad file at once', () => {
    const f = file('bad.yaml', 'mqtt:\n  port: 70000\n  colour: blue\nhttp:\n  port: "x"\nwindow:\n  allowedLatenessMs: -1\nbogus: 1\n');
    try {
      loadConfig({ file: f, env: {} });
      expect.unreachable();
    } catch (err) {
      expect(isGatewayError(err, 'GW_ERR_CONFIG_INVALID')).toBe(true);
      const problems = (err as { details: { problems: string[] } }).details.problems;
      expect(problems).toEqual(
        expect.arrayContaining([
          'mqtt.port: must be <= 65535',
          'mqtt: unknown key "colour"',
          'http.port: must be integer',
          'window.allowedLatenessMs: must be >= 0',
          '(root): unknown key "bogus"',
        ]),
      );
    }
  });

  it('should apply PULSEGATE_* environment overrides over the file', () => {
    const f = file('ok.json', JSON.stringify({ mqtt: { port: 1999 }, dataDir: 'rel' }));
    const c = loadConfig({
      file: f,
      env: { PULSEGATE_MQTT_PORT: '0', PULSEGATE_HTTP_PORT: '0', PULSEGATE_WS_PORT: '9001', PULSEGATE_ALLOW_ANONYMOUS: 'true', PULSEGATE_INFLUX_URL: 'http://127.0.0.1:8086/db' },
    });
    expect(c.mqtt.port).toBe(0);
    expect(c.mqtt.wsPort).toBe(9001);
    expect(c.mqtt.allowAnonymous).toBe(true);
    expect(c.sinks.influxUrl).toBe('http://127.0.0.1:8086/db');
    expect(c.dataDir).toBe(join(dir, 'rel'));
  });

  it('should leave the caller\'s overrides object untouched, so it can be used twice', () => {
    const overrides = { dataDir: join(dir, 'o1'), mqtt: { port: 0 }, sinks: {} };
    const a = loadConfig({ env: {}, overrides });
    expect(overrides).toEqual({ dataDir: join(dir, 'o1'), mqtt: { port: 0 }, sinks: {} });
    expect(Object.isFrozen(overrides.mqtt)).toBe(false);
    overrides.dataDir = join(dir, 'o2');
    const b = loadConfig({ env: {}, overrides });
    expect(b.sinks.embeddedPath).not.toBe(a.sinks.embeddedPath);
  });

  it('should reject malformed environment values with the variable named', () => {
    expect(() => loadConfig({ env: { PULSEGATE_MQTT_PORT: 'abc', PULSEGATE_ALLOW_ANONYMOUS: 'yes' } })).toThrow(/PULSEGATE_MQTT_PORT[\s\S]*PULSEGATE_ALLOW_ANONYMOUS/);
  });

  it('should report an unreadable or unparsable file with GW_ERR_CONFIG_READ', () => {
    expect(() => loadConfig({ file: join(dir, 'missing.yaml'), env: {} })).toThrow(expect.objectContaining({ code: 'GW_ERR_CONFIG_READ' }));
    expect(() => loadConfig({ file: file('broken.yaml', 'a: [1,\n'), env: {} })).toThrow(expect.objectContaining({ code: 'GW_ERR_CONFIG_READ' }));
  });

  it('mqtt.maxPacketBytes defaults to the larger of 1 MiB and maxPayloadBytes + 1 KiB', () => {
    expect(loadConfig({ env: {} }).mqtt.maxPacketBytes).toBe(1_048_576);
    expect(loadConfig({ env: {}, overrides: { mqtt: { maxPayloadBytes: 4_000_000 } } }).mqtt.maxPacketBytes).toBe(4_001_024);
    expect(loadConfig({ env: {}, overrides: { mqtt: { maxPacketBytes: 2_000_000 } } }).mqtt.maxPacketBytes).toBe(2_000_000);
  });

  it('a maxPacketBytes too small for a maxPayloadBytes publish is listed with the other problems', () => {
    try {
      loadConfig({ env: {}, overrides: { mqtt: { maxPayloadBytes: 262_144, maxPacketBytes: 262_144 }, http: { port: 'x' } } });
      expect.unreachable();
    } catch (err) {
      expect(isGatewayError(err, 'GW_ERR_CONFIG_INVALID')).toBe(true);
      const problems = (err as { details: { problems: string[] } }).details.problems;
      expect(problems).toEqual([
        'http.port: must be integer',
        'mqtt.maxPacketBytes: must be at least mqtt.maxPayloadBytes + 1024 (topic and packet id) = 263168, got 262144',
      ]);
    }
  });

  it('mqtt.passthrough: every filter that cannot be one is listed at startup, with why; usable ones load', () => {
    const ok = loadConfig({ env: {}, overrides: { mqtt: { passthrough: ['site/#', 'hvac/+/temp', '#', 'zigbee2mqtt/bridge/state'] } } });
    expect(ok.mqtt.passthrough).toEqual(['site/#', 'hvac/+/temp', '#', 'zigbee2mqtt/bridge/state']);
    expect(loadConfig({ env: {} }).mqtt.passthrough).toEqual([]);
    try {
      loadConfig({ env: {}, overrides: { mqtt: { passthrough: ['site/#', 'a/#/b', '', 'x/y+', 'sensors/#', 'alerts/+/x', '$SYS/#', 'ok/+', 7] } } });
      expect.unreachable();
    } catch (err) {
      expect(isGatewayError(err, 'GW_ERR_CONFIG_INVALID')).toBe(true);
      const problems = (err as { details: { problems: string[] } }).details.problems;
      expect(problems).toEqual([
        'mqtt.passthrough.8: must be string',
        'mqtt.passthrough[1]: "a/#/b" is not a usable topic filter: "#" must be a whole level and the last one [MQTT-4.7.1-2]',
        'mqtt.passthrough[2]: "" is not a usable topic filter: an empty filter matches nothing [MQTT-4.7.3-1]',
        'mqtt.passthrough[3]: "x/y+" is not a usable topic filter: "+" must be a whole level [MQTT-4.7.1-3]',
        'mqtt.passthrough[4]: "sensors/#" is not a usable topic filter: "sensors/" topics are the gateway\'s own (readings and alerts are never passed through)',
        'mqtt.passthrough[5]: "alerts/+/x" is not a usable topic filter: "alerts/" topics are the gateway\'s own (readings and alerts are never passed through)',
        'mqtt.passthrough[6]: "$SYS/#" is not a usable topic filter: "$" topics are the broker\'s and the gateway\'s',
      ]);
    }
  });
});

describe('config loader, delivery', () => {
  it('should default delivery and http.allowAnonymous, and refuse bad static stream names and sources, all listed', () => {
    const config = loadConfig({ env: {} });
    expect(config.http.allowAnonymous).toBe(false);
    expect(config.delivery).toMatchObject({ heartbeatMs: 15_000, maxClients: 10_000, clientBufferBytes: 1_048_576, streams: {} });
    try {
      loadConfig({ env: {}, overrides: { delivery: { streams: { alerts: { source: 'alerts' }, 'Bad Name': { source: 'alerts' }, ok: { source: 'readings' } } } } });
      expect.unreachable();
    } catch (err) {
      const problems = (err as { details: { problems: string[] } }).details.problems;
      expect(problems.some((p) => p.includes('delivery.streams') && p.includes('property name'))).toBe(true);
      expect(problems.some((p) => p.startsWith('delivery.streams.ok.source'))).toBe(true);
    }
    const withFile = loadConfig({ env: { PULSEGATE_HTTP_ALLOW_ANONYMOUS: 'true' }, overrides: { delivery: { auth: { jwtSecretFile: 'secret.txt' } } } });
    expect(withFile.http.allowAnonymous).toBe(true);
    expect(withFile.delivery.auth.jwtSecretFile).toMatch(/^\/.*secret\.txt$/);
  });
});

import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { main } from '../../../simulators/cli.js';
import { parseProfileArgs, planProfile, type ProfileOptions } from '../../../simulators/profiles.js';

const START = Date.UTC(2026, 11, 2, 6, 0, 0);
const base = (o: Partial<ProfileOptions> & Pick<ProfileOptions, 'profile'>) => ({ devices: 2, prefix: 'd-', intervalS: 10, count: 3, seed: 5, startTs: START, repeat: 0, ...o });

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  return { stream: new Writable({ write: (c: Buffer, _e, cb) => ((text += c.toString()), cb()) }), text: () => text };
}

describe('simulator profiles', () => {
  it('should publish Tasmota SENSOR telemetry on tele/<name>/SENSOR with its Time to the second and no seq', () => {
    const all = [...planProfile(base({ profile: 'tasmota' }))];
    expect(all.map((p) => p.topic)).toEqual(['tele/d-1/SENSOR', 'tele/d-2/SENSOR', 'tele/d-1/SENSOR', 'tele/d-2/SENSOR', 'tele/d-1/SENSOR', 'tele/d-2/SENSOR']);
    const body = JSON.parse(all[2]!.payload.toString()) as { Time: string; ENERGY: Record<string, number>; seq?: number };
    expect(body.Time).toBe('2026-12-02T06:00:10');
    expect(Object.keys(body.ENERGY)).toEqual(['TotalStartTime', 'Total', 'Yesterday', 'Today', 'Period', 'Power', 'ApparentPower', 'ReactivePower', 'Factor', 'Voltage', 'Current']);
    expect(body.seq).toBeUndefined();
  });

  it('should publish Zigbee2MQTT climate state on zigbee2mqtt/<name> without time or seq, the same for the same seed', () => {
    const a = [...planProfile(base({ profile: 'zigbee2mqtt' }))];
    const b = [...planProfile(base({ profile: 'zigbee2mqtt' }))];
    expect(a.map((p) => p.payload.toString())).toEqual(b.map((p) => p.payload.toString()));
    expect(a[0]!.topic).toBe('zigbee2mqtt/d-1');
    expect(Object.keys(JSON.parse(a[0]!.payload.toString()) as object).sort()).toEqual(['battery', 'humidity', 'linkquality', 'temperature', 'voltage']);
    const other = [...planProfile(base({ profile: 'zigbee2mqtt', seed: 6 }))];
    expect(other.map((p) => p.payload.toString())).not.toEqual(a.map((p) => p.payload.toString()));
  });

  it('should repeat a payload right after itself with --repeat, byte for byte', () => {
    const all = [...planProfile(base({ profile: 'zigbee2mqtt', count: 50, repeat: 0.5 }))];
    const repeats = all.filter((p) => p.repeat);
    expect(repeats.length).toBeGreaterThan(10);
    for (let i = 1; i < all.length; i++) if (all[i]!.repeat) expect(all[i]!.payload.equals(all[i - 1]!.payload)).toBe(true);
  });

  it('should parse --profile options, refuse bad ones with exit 2, and print its help', async () => {
    expect(parseProfileArgs(['--profile', 'tasmota', '--devices', '4', '--interval', '0.5', '--no-realtime'], {})).toMatchObject({ profile: 'tasmota', devices: 4, prefix: 'plug-', intervalS: 0.5, realtime: false, qos: 1 });
    const err = sink();
    expect(await main(['--profile', 'sparkle'], { out: sink().stream, err: err.stream })).toBe(2);
    expect(err.text()).toContain('--profile must be one of tasmota, zigbee2mqtt');
    const out = sink();
    expect(await main(['--profile', 'tasmota', '--help'], { out: out.stream, err: sink().stream })).toBe(0);
    expect(out.text()).toContain('tele/<name>/SENSOR');
  });
});

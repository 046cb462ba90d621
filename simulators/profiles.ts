/**
 * Devices as they are sold, not as pulsegate would like them: `--profile tasmota` publishes what a
 * Tasmota smart plug publishes (tele/<name>/SENSOR, {"Time":..,"ENERGY":{..}}: event time in
 * seconds, no sequence number), `--profile zigbee2mqtt` what Zigbee2MQTT publishes for a climate
 * sensor (zigbee2mqtt/<friendly name>, {"temperature":..,"humidity":..}: neither time nor
 * sequence). examples/real-sensors.yaml maps both to kinds of the gateway (ingest.sources).
 *
 * Seeded: the same --seed and --start-ts give the same payloads. `--repeat P` publishes a payload
 * twice in a row with probability P (what a QoS 1 resend or a device that publishes twice looks
 * like), which the gateway drops by content for devices without seq.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { writeFileSync } from 'node:fs';
import { Publisher, type ConnectionSpec } from './publisher.js';
import { Random, randomSeed } from './random.js';

export const PROFILES = ['tasmota', 'zigbee2mqtt'] as const;
export type ProfileName = (typeof PROFILES)[number];

export interface ProfileOptions {
  readonly profile: ProfileName;
  readonly devices: number;
  readonly prefix: string;
  /** Seconds between two publishes of a device. */
  readonly intervalS: number;
  /** Publishes per device (repeats not counted). */
  readonly count: number;
  readonly seed: number;
  /** Event time of the first publishes, ms since the epoch. */
  readonly startTs: number;
  /** Pace by wall clock (a publish when its time has come); off: as fast as acknowledgements allow. */
  readonly realtime: boolean;
  readonly repeat: number;
  readonly url: string;
  readonly qos: 0 | 1;
  readonly username?: string;
  readonly password?: string;
  /** One connection per device, username = device id ("{device}" in the password replaced). */
  readonly perDeviceCredentials: boolean;
  readonly summaryFile?: string;
}

export interface ProfilePublish {
  readonly device: string;
  readonly topic: string;
  readonly payload: Buffer;
  /** Event time the payload stands for (ms). */
  readonly ts: number;
  readonly repeat: boolean;
}

export interface ProfileSummary {
  readonly profile: ProfileName;
  readonly seed: number;
  readonly startTs: number;
  readonly devices: readonly string[];
  /** Distinct payloads acknowledged (QoS 1) or written (QoS 0). */
  readonly readings: number;
  /** Repeated payloads sent (each also acknowledged). */
  readonly repeats: number;
  readonly failed: number;
  readonly readingsPerSecond: number;
}

const DEFAULT_PREFIX: Record<ProfileName, string> = { tasmota: 'plug-', zigbee2mqtt: 'climate-' };

export function topicOf(profile: ProfileName, device: string): string {
  return profile === 'tasmota' ? `tele/${device}/SENSOR` : `zigbee2mqtt/${device}`;
}

/** Tasmota writes its local time without an offset; a plug set to UTC (Timezone 0) writes UTC. */
function tasmotaTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(0, 19);
}

const round = (v: number, digits: number): number => Number(v.toFixed(digits));

/** Every publish of a run, in send order (devices interleaved by time). */
export function* planProfile(o: Pick<ProfileOptions, 'profile' | 'devices' | 'prefix' | 'intervalS' | 'count' | 'seed' | 'startTs' | 'repeat'>): Generator<ProfilePublish> {
  const rnd = new Random(o.seed, 11);
  const ids = Array.from({ length: o.devices }, (_, i) => `${o.prefix}${i + 1}`);
  const state = ids.map(() => ({ total: round(rnd.uniform(0.1, 50), 3), load: rnd.uniform(5, 1500), temp: rnd.uniform(18, 24), hum: rnd.uniform(35, 60), battery: rnd.int(60, 100) }));
  for (let n = 0; n < o.count; n++) {
    const ts = o.startTs + Math.round(n * o.intervalS * 1000);
    for (let d = 0; d < ids.length; d++) {
      const s = state[d]!;
      const device = ids[d]!;
      let body: unknown;
      if (o.profile === 'tasmota') {
        s.load = Math.max(0, s.load + rnd.normal(0, 30));
        const power = Math.round(s.load);
        const voltage = Math.round(rnd.normal(230, 2));
        s.total = round(s.total + (power * o.intervalS) / 3_600_000, 3);
        body = {
          Time: tasmotaTime(ts),
          ENERGY: {
            TotalStartTime: '2026-01-01T00:00:00',
            Total: s.total,
            Yesterday: 1.234,
            Today: 0.456,
            Period: 0,
            Power: power,
            ApparentPower: Math.round(power * 1.05),
            ReactivePower: Math.round(power * 0.3),
            Factor: 0.95,
            Voltage: voltage,
            Current: round(power / voltage, 3),
          },
        };
      } else {
        s.temp += rnd.normal(0, 0.1);
        s.hum = Math.min(100, Math.max(0, s.hum + rnd.normal(0, 0.3)));
        if (rnd.chance(0.01)) s.battery = Math.max(0, s.battery - 1);
        body = { battery: s.battery, humidity: round(s.hum, 1), linkquality: rnd.int(60, 255), temperature: round(s.temp, 2), voltage: 2800 + s.battery * 4 };
      }
      const payload = Buffer.from(JSON.stringify(body));
      const topic = topicOf(o.profile, device);
      yield { device, topic, payload, ts, repeat: false };
      if (o.repeat > 0 && rnd.chance(o.repeat)) yield { device, topic, payload, ts, repeat: true };
    }
  }
}

export async function runProfile(o: ProfileOptions): Promise<ProfileSummary> {
  const devices = Array.from({ length: o.devices }, (_, i) => `${o.prefix}${i + 1}`);
  const tag = Math.floor(Math.random() * 0xffffff).toString(16);
  const connections: ConnectionSpec[] = o.perDeviceCredentials
    ? devices.map((id) => ({ clientId: `${id}:${tag}`, username: id, ...(o.password === undefined ? {} : { password: o.password.replaceAll('{device}', id) }) }))
    : [{ clientId: o.username === undefined ? `sim-${o.profile}-${tag}` : `${o.username}:sim-${tag}`, ...(o.username === undefined ? {} : { username: o.username }), ...(o.password === undefined ? {} : { password: o.password }) }];
  const publisher = await Publisher.connect({ url: o.url, qos: o.qos, connections, inflight: 256 });
  let readings = 0;
  let repeats = 0;
  let failed = 0;
  const t0 = performance.now();
  try {
    for (const p of planProfile(o)) {
      const connection = o.perDeviceCredentials ? devices.indexOf(p.device) : 0;
      if (o.realtime) {
        const wait = t0 + (p.ts - o.startTs) - performance.now();
        if (wait > 0.5) await new Promise((r) => setTimeout(r, wait));
      }
      while (!publisher.hasCapacity(connection)) await publisher.waitForCapacity(connection);
      publisher.publish(connection, p.topic, p.payload, (err) => {
        if (err !== undefined) failed++;
        else if (p.repeat) repeats++;
        else readings++;
      });
    }
    await publisher.drain(30_000);
  } finally {
    await publisher.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  const summary: ProfileSummary = { profile: o.profile, seed: o.seed, startTs: o.startTs, devices, readings, repeats, failed, readingsPerSecond: Math.round(readings / Math.max(seconds, 1e-3)) };
  if (o.summaryFile !== undefined) writeFileSync(o.summaryFile, `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}

export const PROFILE_HELP = `Usage: pulsegate-sim --profile tasmota|zigbee2mqtt [options]

Publishes what real devices publish, on their own topics, for a gateway with ingest.sources
(see examples/real-sensors.yaml):
  tasmota       smart plugs: tele/<name>/SENSOR, {"Time":"2026-...","ENERGY":{"Power":..,..}}
                (event time to the second, no sequence number)
  zigbee2mqtt   climate sensors: zigbee2mqtt/<name>, {"temperature":..,"humidity":..,"battery":..}
                (no time, no sequence number)

Options:
  --devices N             number of devices (default 3)
  --prefix P              device names <P>1..<P>N (default plug- / climate-)
  --interval S            seconds between two publishes of a device (default 1)
  --count N               publishes per device (default 10)
  --realtime, --no-realtime
                          pace by wall clock (default on)
  --repeat P              probability to publish a payload twice in a row (default 0)
  --seed N                PRNG seed (default random)
  --start-ts T            event time of the first publishes: ms or an ISO date (default now)
  --url URL               broker (default mqtt://127.0.0.1:1883)
  --qos 0|1               (default 1)
  --username U, --password P, --per-device-credentials
                          as for the other commands
  --summary FILE          write the summary JSON to FILE
  -h, --help              this help

Example:
  pulsegate-sim --profile tasmota --devices 5 --interval 10 --count 60`;

const OPTIONS = {
  profile: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  devices: { type: 'string' },
  prefix: { type: 'string' },
  interval: { type: 'string' },
  count: { type: 'string' },
  realtime: { type: 'boolean' },
  'no-realtime': { type: 'boolean' },
  repeat: { type: 'string' },
  seed: { type: 'string' },
  'start-ts': { type: 'string' },
  url: { type: 'string' },
  qos: { type: 'string' },
  username: { type: 'string' },
  password: { type: 'string' },
  'per-device-credentials': { type: 'boolean' },
  summary: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

/** Parses `--profile ...` argv; throws Error with a message for the user; null = print the help. */
export function parseProfileArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ProfileOptions | null {
  const { values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false });
  if (values.help === true) return null;
  const profile = values.profile;
  if (profile !== 'tasmota' && profile !== 'zigbee2mqtt') throw new Error(`--profile must be one of ${PROFILES.join(', ')}, got "${profile ?? ''}"`);
  const num = (name: string, v: string | undefined, dflt: number, ok: (n: number) => boolean): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new Error(`--${name}: invalid value "${v}"`);
    return n;
  };
  const qos = num('qos', values.qos, 1, (n) => n === 0 || n === 1) as 0 | 1;
  let startTs = Date.now();
  if (values['start-ts'] !== undefined) {
    const t = /^\d+$/.test(values['start-ts']) ? Number(values['start-ts']) : Date.parse(values['start-ts']);
    if (!Number.isFinite(t)) throw new Error(`--start-ts must be ms since the epoch or an ISO date, got "${values['start-ts']}"`);
    startTs = t;
  }
  if (values.realtime === true && values['no-realtime'] === true) throw new Error('--realtime and --no-realtime contradict each other');
  const password = values.password ?? env['PULSEGATE_SIM_PASSWORD'];
  return {
    profile,
    devices: num('devices', values.devices, 3, (n) => Number.isInteger(n) && n >= 1 && n <= 100_000),
    prefix: values.prefix ?? DEFAULT_PREFIX[profile],
    intervalS: num('interval', values.interval, 1, (n) => n > 0),
    count: num('count', values.count, 10, (n) => Number.isInteger(n) && n >= 1),
    seed: num('seed', values.seed, randomSeed(), (n) => Number.isInteger(n) && n >= 0),
    startTs,
    realtime: values['no-realtime'] !== true,
    repeat: num('repeat', values.repeat, 0, (n) => n >= 0 && n <= 1),
    url: values.url ?? 'mqtt://127.0.0.1:1883',
    qos,
    perDeviceCredentials: values['per-device-credentials'] === true,
    ...(values.username === undefined ? {} : { username: values.username }),
    ...(password === undefined ? {} : { password }),
    ...(values.summary === undefined ? {} : { summaryFile: values.summary }),
  };
}

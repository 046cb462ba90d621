#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SimulatorOptionError, type SimulatorOptions, type SimulatorProgress } from './options.js';
import { PublishError } from './publisher.js';
import { runSimulator } from './run.js';
import { runSparkplugCommand, SPARKPLUG_HELP, SPARKPLUG_OPTIONS_ONLY_FOR, sparkplugRunOptions } from './sparkplug-cli.js';
import { PROFILE_HELP, parseProfileArgs, runProfile, type ProfileOptions } from './profiles.js';
import type { Summary } from './summary.js';

/** Exit codes: 0 done (also after Ctrl-C), 1 runtime failure, 2 bad usage, 3 some publishes failed. */
export const EXIT = { ok: 0, failure: 1, usage: 2, unacknowledged: 3 } as const;

const COMMON_HELP = `
Devices and rates:
  --devices N             number of devices (default: 5 athletes, 3 bridges, 100 for load)
  --prefix P              device ids are <P>1..<P>N (default athlete-, bridge-, load-hr-/load-br-)
  --rate R                per device: readings/s (heart rate, default 5) or mean vehicles/s at
                          midday traffic (bridge, default 1)
  --total-rate R          readings/s over all devices: paces sending; the per-device rate
                          defaults to R / devices
  --duration S            event-time span in seconds (readings with ts < start + S); when paced
                          by wall clock this is also the run time
  --count N               readings per device
                          (neither --duration nor --count: run until Ctrl-C)
  --realtime, --no-realtime
                          pace by wall clock, a reading is sent when its event time has come
                          (default: on for heart-rate and bridge, off for load). Unpaced,
                          event time runs ahead of the wall clock: a gateway rejects readings
                          too far in the future, so give a --start-ts in the past
  --seed N                PRNG seed: same seed and --start-ts = same readings (default: random,
                          written to the summary)
  --start-ts T            event time of the first readings: ms since the epoch or an ISO date
                          (default: now)

Payloads:
  --format protobuf|json  payload encoding (default protobuf)
  --batch N               readings per publish; N > 1 uses the batch message / a JSON array
                          (default 1)
  --out-of-order P        probability to hold a reading back behind the next 1-3 (default 0)
  --duplicates P          probability to send a reading twice with the same seq (default 0)

MQTT:
  --url URL               broker (default mqtt://127.0.0.1:1883)
  --qos 0|1               (default 1)
  --username U            one username for all connections
  --password P            password (or env PULSEGATE_SIM_PASSWORD)
  --per-device-credentials
                          one connection per device, username = device id; "{device}" in the
                          password is replaced by the device id
  --connections N         connections the devices are spread over (default 1, load 4)
  --inflight N            publishes in flight per connection (default 256 at QoS 1, 1024 at QoS 0)

Output:
  --summary FILE          write the summary JSON (what was sent and acknowledged) to FILE
  --quiet                 no progress line
  -h, --help              this help

Exit codes: 0 done (also after Ctrl-C), 1 runtime failure (e.g. cannot connect),
2 bad usage, 3 finished but some publishes were not acknowledged.`;

const HEART_RATE_HELP = `Heart rate:
  --anomaly-prob P        probability that a reading starts an anomaly episode (default 0.0005)`;

const BRIDGE_HELP = `Bridge:
  --lanes N               lanes per bridge, 1-16 (default 4)
  --weight-prob P         probability that a detection carries weightKg (default 0.5)
  --utc-offset MIN        local time offset from UTC in minutes for the rush-hour profile (default 0)
  --no-rush-hour          constant arrival rate instead of the daily profile
  --rush-hour             follow the daily profile (default, except for load)
  --truck-surges          now and then 2-4 minutes of 40-60 extra trucks a minute in one lane
                          (raises the default alert rule bridge-truck-surge; on in npm run demo)
  --no-truck-surges       none (default)
  --truck-surge-every S   mean event time between surges, s (default 600; implies --truck-surges)`;

const NATIVE_PROFILE_HELP = `Profile:
  --profile native|sparkplug
                          native: sensors/<kind>/<deviceId> (default); sparkplug: a Sparkplug B
                          edge node (heart-rate only; see below)`;

const HELP: Record<string, string> = {
  main: `Usage: pulsegate-sim <command> [options]

Sensor simulators for pulsegate. Readings go to sensors/<kind>/<deviceId> over MQTT 3.1.1.

Commands:
  heart-rate   athletes' heart rate at 5 Hz: rest, effort ramps, recovery, rare anomalies
  bridge       vehicles crossing bridges: Poisson arrivals with rush hours, classes, lanes
  load         benchmark load: many devices, a target total rate, several connections

Real devices' own topics and payloads (for a gateway with ingest.sources):
  --profile tasmota|zigbee2mqtt [options]

Run "pulsegate-sim <command> --help" (or "--profile NAME --help") for the options.`,
  'heart-rate': `Usage: pulsegate-sim heart-rate [options]

Simulates athletes' heart-rate straps (topic sensors/heart-rate/<athleteId>): rest around 60 bpm,
effort ramps to 140-185 bpm, exponential recovery, noise, an RR interval consistent with the bpm,
and rare anomalies (a spike above 200 bpm or a flatline at 0 for a few seconds).

${HEART_RATE_HELP}
${NATIVE_PROFILE_HELP}
${SPARKPLUG_HELP}
${COMMON_HELP}

Example:
  pulsegate-sim heart-rate --devices 10 --duration 120 --summary hr.json
  pulsegate-sim heart-rate --profile sparkplug --group plant --edge line1 --devices 3 --count 100`,
  bridge: `Usage: pulsegate-sim bridge [options]

Simulates bridge sensors that detect passing vehicles (topic sensors/bridge/<bridgeId>): Poisson
arrivals whose rate follows a daily profile of the event time (rush hours around 08:00 and 17:00),
a class mix (CAR 70%, VAN 12%, TRUCK 9%, MOTORCYCLE 5%, BUS 3%, UNKNOWN 1%), lanes, speeds and
axles per class, and an optional weight.

${BRIDGE_HELP}
${COMMON_HELP}

Example:
  pulsegate-sim bridge --devices 3 --rate 2 --qos 1 --summary bridge.json`,
  load: `Usage: pulsegate-sim load [options]

Benchmark load: many devices, a target total rate, batches, several connections. Payloads are
generated and encoded before the clock starts (up to --pre-encode readings), publishes are
pipelined (QoS 0 is never awaited, QoS 1 keeps --inflight publishes in flight per connection),
and the achieved rate is printed at the end.

Load:
  --kind heart-rate|bridge
                          readings to generate (default heart-rate); the options of that
                          command (--anomaly-prob, --lanes, ...) apply too
  --pre-encode N          readings to generate and encode ahead (default 2000000, 0 = none)
  With --kind bridge the arrival rate is constant unless --rush-hour is given.

${HEART_RATE_HELP}

${BRIDGE_HELP}
${COMMON_HELP}

Example:
  pulsegate-sim load --devices 1000 --total-rate 50000 --batch 10 --connections 8 --qos 1 --duration 30`,
};

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  devices: { type: 'string' },
  prefix: { type: 'string' },
  rate: { type: 'string' },
  'total-rate': { type: 'string' },
  duration: { type: 'string' },
  count: { type: 'string' },
  realtime: { type: 'boolean' },
  'no-realtime': { type: 'boolean' },
  seed: { type: 'string' },
  'start-ts': { type: 'string' },
  format: { type: 'string' },
  batch: { type: 'string' },
  'out-of-order': { type: 'string' },
  duplicates: { type: 'string' },
  url: { type: 'string' },
  qos: { type: 'string' },
  username: { type: 'string' },
  password: { type: 'string' },
  'per-device-credentials': { type: 'boolean' },
  connections: { type: 'string' },
  inflight: { type: 'string' },
  summary: { type: 'string' },
  quiet: { type: 'boolean' },
  'anomaly-prob': { type: 'string' },
  lanes: { type: 'string' },
  'weight-prob': { type: 'string' },
  'utc-offset': { type: 'string' },
  'no-rush-hour': { type: 'boolean' },
  'rush-hour': { type: 'boolean' },
  'truck-surges': { type: 'boolean' },
  'no-truck-surges': { type: 'boolean' },
  'truck-surge-every': { type: 'string' },
  kind: { type: 'string' },
  'pre-encode': { type: 'string' },
  profile: { type: 'string' },
  group: { type: 'string' },
  edge: { type: 'string' },
  'primary-host': { type: 'string' },
  loss: { type: 'string' },
  end: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const ONLY_FOR: Record<string, readonly string[]> = {
  'anomaly-prob': ['heart-rate', 'load'],
  lanes: ['bridge', 'load'],
  'weight-prob': ['bridge', 'load'],
  'utc-offset': ['bridge', 'load'],
  'no-rush-hour': ['bridge', 'load'],
  'rush-hour': ['bridge', 'load'],
  'truck-surges': ['bridge', 'load'],
  'no-truck-surges': ['bridge', 'load'],
  'truck-surge-every': ['bridge', 'load'],
  kind: ['load'],
  'pre-encode': ['load'],
  profile: ['heart-rate'],
  ...SPARKPLUG_OPTIONS_ONLY_FOR,
};

export class UsageError extends Error {
  override name = 'UsageError';
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v.trim());
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${v}"`);
  return n;
}

function parseStartTs(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new UsageError(`--start-ts must be ms since the epoch or an ISO date, got "${v}"`);
  return t;
}

export interface ParsedCommand {
  readonly command: 'heart-rate' | 'bridge' | 'load' | null;
  /** Help text to print instead of running. */
  readonly help: string | null;
  readonly options: SimulatorOptions | null;
  readonly quiet: boolean;
  /** --profile sparkplug: the edge node to run instead of the native simulator. */
  readonly sparkplug?: ReturnType<typeof sparkplugRunOptions>;
}

/** Parses argv (without node and the script); throws UsageError with a clear message. */
export function parseCommandLine(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ParsedCommand {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    return { command: null, help: HELP['main']!, options: null, quiet: false };
  }
  if (command !== 'heart-rate' && command !== 'bridge' && command !== 'load') {
    throw new UsageError(`unknown command "${command}" (expected heart-rate, bridge or load; see --help)`);
  }
  let values: { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };
  try {
    ({ values } = parseArgs({ args: [...rest], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message} (see pulsegate-sim ${command} --help)`);
  }
  if (values.help === true) return { command, help: HELP[command]!, options: null, quiet: false };
  for (const [opt, commands] of Object.entries(ONLY_FOR)) {
    if ((values as Record<string, unknown>)[opt] !== undefined && !commands.includes(command)) {
      throw new UsageError(`--${opt} is not an option of "${command}" (see pulsegate-sim ${command} --help)`);
    }
  }
  if (values.realtime === true && values['no-realtime'] === true) throw new UsageError('--realtime and --no-realtime contradict each other');
  let kind: 'heart-rate' | 'bridge';
  if (command === 'load') {
    const k = values.kind ?? 'heart-rate';
    if (k !== 'heart-rate' && k !== 'bridge') throw new UsageError(`--kind must be heart-rate or bridge, got "${k}"`);
    kind = k;
  } else kind = command;
  const qos = num('qos', values.qos);
  if (qos !== undefined && qos !== 0 && qos !== 1) throw new UsageError(`--qos must be 0 or 1, got "${values.qos}"`);
  const format = values.format;
  if (format !== undefined && format !== 'protobuf' && format !== 'json') throw new UsageError(`--format must be protobuf or json, got "${format}"`);

  const o: { -readonly [K in keyof SimulatorOptions]: SimulatorOptions[K] } = { kind, load: command === 'load' };
  const set = <K extends keyof SimulatorOptions>(key: K, v: SimulatorOptions[K] | undefined): void => {
    if (v !== undefined) o[key] = v;
  };
  set('devices', num('devices', values.devices));
  set('prefix', values.prefix);
  set('rate', num('rate', values.rate));
  set('totalRate', num('total-rate', values['total-rate']));
  set('durationS', num('duration', values.duration));
  set('count', num('count', values.count));
  if (values.realtime === true) o.realtime = true;
  if (values['no-realtime'] === true) o.realtime = false;
  set('seed', num('seed', values.seed));
  set('startTs', parseStartTs(values['start-ts']));
  set('format', format);
  set('batch', num('batch', values.batch));
  set('outOfOrder', num('out-of-order', values['out-of-order']));
  set('duplicates', num('duplicates', values.duplicates));
  set('url', values.url);
  set('qos', qos as 0 | 1 | undefined);
  set('username', values.username);
  set('password', values.password ?? env['PULSEGATE_SIM_PASSWORD']);
  if (values['per-device-credentials'] === true) o.perDeviceCredentials = true;
  set('connections', num('connections', values.connections));
  set('inflight', num('inflight', values.inflight));
  set('summaryFile', values.summary);
  set('anomalyProbability', num('anomaly-prob', values['anomaly-prob']));
  set('lanes', num('lanes', values.lanes));
  set('weightProbability', num('weight-prob', values['weight-prob']));
  set('utcOffsetMinutes', num('utc-offset', values['utc-offset']));
  if (values['rush-hour'] === true && values['no-rush-hour'] === true) throw new UsageError('--rush-hour and --no-rush-hour contradict each other');
  if (values['rush-hour'] === true) o.rushHour = true;
  if (values['no-rush-hour'] === true) o.rushHour = false;
  if (values['truck-surges'] === true && values['no-truck-surges'] === true) throw new UsageError('--truck-surges and --no-truck-surges contradict each other');
  if (values['truck-surges'] === true) o.truckSurges = true;
  if (values['no-truck-surges'] === true) o.truckSurges = false;
  set('truckSurgeEveryS', num('truck-surge-every', values['truck-surge-every']));
  if (values['truck-surge-every'] !== undefined && values['no-truck-surges'] !== true) o.truckSurges = true;
  set('preEncode', num('pre-encode', values['pre-encode']));
  const profile = values.profile ?? 'native';
  if (profile !== 'native' && profile !== 'sparkplug') throw new UsageError(`--profile must be native or sparkplug, got "${profile}"`);
  if (profile === 'native') {
    for (const opt of Object.keys(SPARKPLUG_OPTIONS_ONLY_FOR)) if ((values as Record<string, unknown>)[opt] !== undefined) throw new UsageError(`--${opt} needs --profile sparkplug`);
  }
  if (profile === 'sparkplug') {
    return { command, help: null, options: o, quiet: values.quiet === true, sparkplug: sparkplugRunOptions(o, { group: values.group, edge: values.edge, primaryHost: values['primary-host'], loss: num('loss', values.loss), end: values.end }, (m) => new UsageError(m)) };
  }
  return { command, help: null, options: o, quiet: values.quiet === true };
}

function formatProgress(label: string, p: SimulatorProgress): string {
  const failed = p.readingsFailed > 0 ? `  failed ${p.readingsFailed}` : '';
  return `${label} ${(p.elapsedMs / 1000).toFixed(1)}s  sent ${p.readingsSent}  acked ${p.readingsAcked}${failed}  in-flight ${p.inFlight}  ${p.ratePerSecond}/s`;
}

function formatResult(s: Summary, summaryFile: string | undefined): string {
  const t = s.totals;
  const what = s.counts === 'acknowledged' ? 'acknowledged (QoS 1)' : 'sent (QoS 0, not acknowledged)';
  const lines = [
    `${s.kind}: ${s.stopped}; ${t.readings} unique readings ${what} in ${t.publishes} publishes from ${Object.keys(s.byDevice).length} devices`,
    `achieved ${t.readingsPerSecond} readings/s, ${t.publishesPerSecond} publishes/s (seed ${s.seed}, start-ts ${s.startTs})`,
  ];
  if (t.duplicatesInjected > 0 || t.outOfOrderInjected > 0) lines.push(`injected ${t.duplicatesInjected} duplicates, ${t.outOfOrderInjected} out-of-order readings`);
  if (t.readingsFailed > 0) lines.push(`NOT acknowledged: ${t.readingsFailed} readings in ${t.publishesFailed} publishes (not counted)`);
  if (summaryFile !== undefined) lines.push(`summary written to ${summaryFile}`);
  return lines.join('\n');
}

/** `--profile NAME` instead of a command: devices as they are sold (simulators/profiles.ts). */
async function mainProfile(argv: readonly string[], io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream }): Promise<number> {
  let options: ProfileOptions | null;
  try {
    options = parseProfileArgs(argv);
  } catch (err) {
    io.err.write(`pulsegate-sim: ${(err as Error).message} (see pulsegate-sim --profile tasmota --help)\n`);
    return EXIT.usage;
  }
  if (options === null) {
    io.out.write(`${PROFILE_HELP}\n`);
    return EXIT.ok;
  }
  try {
    const s = await runProfile(options);
    io.out.write(`${s.profile}: ${s.readings} payloads (+${s.repeats} repeats) from ${s.devices.length} devices acknowledged, ${s.readingsPerSecond}/s (seed ${s.seed}, start-ts ${s.startTs})${s.failed > 0 ? `; ${s.failed} NOT acknowledged` : ''}\n`);
    return s.failed > 0 ? EXIT.unacknowledged : EXIT.ok;
  } catch (err) {
    io.err.write(`pulsegate-sim: ${(err as Error).message}\n`);
    return EXIT.failure;
  }
}

/** Runs the CLI; resolves with the exit code. */
export async function main(argv: readonly string[], io: { out: NodeJS.WritableStream; err: NodeJS.WriteStream | NodeJS.WritableStream } = { out: process.stdout, err: process.stderr }): Promise<number> {
  // --profile tasmota|zigbee2mqtt (devices as sold) runs instead of a command; --profile
  // native|sparkplug is an option of the heart-rate command.
  const at = argv.findIndex((a) => a === '--profile' || a.startsWith('--profile='));
  const named = at < 0 ? undefined : argv[at]!.startsWith('--profile=') ? argv[at]!.slice('--profile='.length) : argv[at + 1];
  if (at >= 0 && named !== 'native' && named !== 'sparkplug') return mainProfile(argv, io);
  let parsed: ParsedCommand;
  try {
    parsed = parseCommandLine(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err.write(`pulsegate-sim: ${err.message}\n`);
      return EXIT.usage;
    }
    throw err;
  }
  if (parsed.help !== null || parsed.options === null) {
    io.out.write(`${parsed.help ?? HELP['main']}\n`);
    return EXIT.ok;
  }
  const controller = new AbortController();
  if (parsed.sparkplug !== undefined) return runSparkplugCommand(parsed.sparkplug, controller, io);
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    interrupts++;
    if (interrupts === 1) {
      io.err.write(`\n${sig}: stopping, waiting for acknowledgements (again to quit at once)\n`);
      controller.abort();
    } else process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const tty = 'isTTY' in io.err && io.err.isTTY === true;
  const label = parsed.command === 'load' ? `load(${parsed.options.kind})` : parsed.options.kind;
  let progressShown = false;
  try {
    const summary = await runSimulator({
      ...parsed.options,
      signal: controller.signal,
      onWarning: (m) => io.err.write(`${progressShown && tty ? '\n' : ''}warning: ${m}\n`),
      ...(parsed.quiet
        ? {}
        : {
            onProgress: (p: SimulatorProgress) => {
              progressShown = true;
              const line = formatProgress(label, p);
              io.err.write(tty ? `\r\x1b[2K${line}${p.done ? '\n' : ''}` : `${line}\n`);
            },
          }),
    });
    io.out.write(`${formatResult(summary, parsed.options.summaryFile)}\n`);
    if (summary.stopped === 'completed' && summary.totals.readingsFailed > 0) return EXIT.unacknowledged;
    return EXIT.ok;
  } catch (err) {
    if (err instanceof SimulatorOptionError) {
      io.err.write(`pulsegate-sim: ${err.message}\n`);
      return EXIT.usage;
    }
    if (err instanceof PublishError) {
      io.err.write(`pulsegate-sim: ${err.message}\n`);
      return EXIT.failure;
    }
    io.err.write(`pulsegate-sim: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT.failure;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`pulsegate-sim: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = EXIT.failure;
    },
  );
}

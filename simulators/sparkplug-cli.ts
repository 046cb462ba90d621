/** `pulsegate-sim heart-rate --profile sparkplug`: options and the run of a Sparkplug B edge node (simulators/sparkplug.ts). */
import { DEFAULT_URL, type SimulatorOptions } from './options.js';
import { runSparkplugEdge, type SparkplugRunOptions } from './sparkplug.js';

export const SPARKPLUG_HELP = `Sparkplug B (--profile sparkplug): one edge node, one device per athlete, spBv1.0/<group>/...
  --group G               Sparkplug group id (default pulsegate)
  --edge E                edge node id (default edge1)
  --primary-host H        wait for the retained spBv1.0/STATE/<H> online before the births
  --loss P                probability that a DDATA is lost (its seq used, never sent; default 0)
  --end ndeath|will|ddeath
                          how the run ends: the node sends NDEATH (default), the connection drops
                          and the broker publishes the will (NDEATH), or a DDEATH per device first
  Device ids at the gateway: <group>:<edge>:<device>. Readings per device: --count, or --rate x
  --duration, or until Ctrl-C. An NCMD "Node Control/Rebirth" is answered with new births.`;

export const SPARKPLUG_OPTIONS_ONLY_FOR: Record<string, readonly string[]> = { group: ['heart-rate'], edge: ['heart-rate'], 'primary-host': ['heart-rate'], loss: ['heart-rate'], end: ['heart-rate'] };

const ENDS = ['ndeath', 'will', 'ddeath'] as const;

/** The edge node's run from the parsed command line; `usage` builds the error for a bad value. */
export function sparkplugRunOptions(
  o: SimulatorOptions,
  extra: { group?: string | undefined; edge?: string | undefined; primaryHost?: string | undefined; loss?: number | undefined; end?: string | undefined },
  usage: (message: string) => Error,
): SparkplugRunOptions {
  const devices = o.devices ?? 5;
  if (!Number.isInteger(devices) || devices < 1 || devices > 10_000) throw usage(`--devices must be an integer in [1, 10000], got ${devices}`);
  const rate = o.rate ?? 5;
  if (!(rate >= 0)) throw usage(`--rate must be >= 0, got ${rate}`);
  const count = o.count ?? (o.durationS !== undefined ? Math.ceil(o.durationS * rate) : Number.POSITIVE_INFINITY);
  const loss = extra.loss ?? 0;
  if (!(loss >= 0 && loss < 1)) throw usage(`--loss must be in [0, 1), got ${loss}`);
  const end = extra.end ?? 'ndeath';
  if (!(ENDS as readonly string[]).includes(end)) throw usage(`--end must be one of ${ENDS.join('|')}, got "${end}"`);
  const id = /^[A-Za-z0-9_.-]+$/;
  const group = extra.group ?? 'pulsegate';
  const edge = extra.edge ?? 'edge1';
  if (!id.test(group) || !id.test(edge)) throw usage('--group and --edge must be 1+ characters of [A-Za-z0-9_.-]');
  const prefix = o.prefix ?? 'athlete-';
  return {
    url: o.url ?? DEFAULT_URL,
    group,
    edge,
    devices: Array.from({ length: devices }, (_, i) => `${prefix}${i + 1}`),
    seed: o.seed ?? Math.floor(Math.random() * 2 ** 31),
    ...(o.startTs === undefined ? {} : { startTs: o.startTs }),
    ...(extra.primaryHost === undefined ? {} : { primaryHost: extra.primaryHost }),
    loss,
    count,
    // Unpaced only when asked for (--no-realtime); by default DDATA follow the event time.
    rate: o.realtime === false ? 0 : rate,
    end: end as (typeof ENDS)[number],
  };
}

export async function runSparkplugCommand(o: SparkplugRunOptions, controller: AbortController, io: { out: NodeJS.WritableStream; err: NodeJS.WritableStream }): Promise<number> {
  const onSignal = (): void => controller.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const stats = await runSparkplugEdge({ ...o, signal: controller.signal });
    const sent = Object.values(stats.sent).reduce((a, b) => a + b, 0);
    io.out.write(`sparkplug: edge node ${o.group}/${o.edge}: ${sent} DDATA from ${o.devices.length} devices, ${stats.lost.length} lost on purpose, ${stats.births} births (${stats.rebirthRequests} on request), ended by ${o.end ?? 'ndeath'} (seed ${o.seed})\n`);
    return 0;
  } catch (err) {
    io.err.write(`pulsegate-sim: ${(err as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

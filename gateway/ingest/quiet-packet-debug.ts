/**
 * mqtt-packet (aedes' MQTT parser and writer) calls `debug(...)` a dozen times per packet. With
 * its namespaces disabled each call still builds an argument array and asks the `debug` package
 * whether they are enabled: about a fifth of the parser's time per small PUBLISH. Unless the
 * DEBUG environment variable is set when the process starts, its loggers are made no-ops; with
 * DEBUG set (`DEBUG=mqtt-packet:* pulsegate start`), nothing changes and they print as usual.
 * (Turning them on later with `debug.enable()` then has no effect on mqtt-packet.)
 *
 * Must be evaluated before mqtt-packet is first loaded: mqtt-ingest.ts imports it before aedes.
 * It swaps the `debug` module's export, as mqtt-packet resolves it, for a factory that hands out a
 * no-op for `mqtt-packet:` namespaces and the real logger for every other.
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

type DebugFactory = ((namespace: string) => unknown) & Record<string, unknown>;

function quietMqttPacketDebug(): void {
  if (process.env['DEBUG'] !== undefined && process.env['DEBUG'] !== '') return;
  const require = createRequire(import.meta.url);
  let debugPath: string;
  try {
    debugPath = require.resolve('debug', { paths: [dirname(require.resolve('mqtt-packet'))] });
  } catch {
    return; // a layout where mqtt-packet or its debug is elsewhere: leave it as it is
  }
  const cached = require.cache[debugPath];
  const real = (cached?.exports ?? require(debugPath)) as DebugFactory;
  if (real['pulsegateQuiet'] === true) return;
  const quiet = function noop(): void {};
  Object.assign(quiet, { enabled: false, namespace: 'mqtt-packet', extend: () => quiet, destroy: () => true, log: quiet });
  const factory = Object.assign((namespace: string) => (namespace.startsWith('mqtt-packet:') ? quiet : real(namespace)), real, { pulsegateQuiet: true });
  require.cache[debugPath]!.exports = factory;
}

quietMqttPacketDebug();

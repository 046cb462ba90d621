#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadConfig } from './config/load-config.js';
import { isGatewayError, type ErrorCode, type GatewayError } from './errors.js';
import { hashSecret } from './ingest/credentials.js';
import { createSparkplugMapping } from './ingest/sparkplug-mapping.js';
import { createKindRegistry } from './kinds/registry.js';

const HELP = `pulsegate — IoT sensor ingestion gateway

Usage:
  pulsegate start [--config FILE]        run the gateway (defaults + PULSEGATE_* env when no file)
  pulsegate check-config FILE            validate a config file (and env); list every problem
  pulsegate hash-secret [SECRET]         print a scrypt hash for a device credentials file
                                         (reads the secret from stdin when not given)
  pulsegate log inspect DIR [--from N] [--limit N]
                                         print the records of a message log
  pulsegate log verify DIR               check every record's CRC and offset continuity
  pulsegate push-proxy [--config FILE]   run the push proxy (section pushProxy of the config): holds
                                         the gateway's SSE streams for sleeping phones, Web Push
  pulsegate push-proxy generate-vapid-keys --out FILE
                                         write a new VAPID key pair (pushProxy.vapidKeyFile)
  pulsegate --help | --version          (--help after any command prints this too)

Environment overrides: PULSEGATE_MQTT_PORT, PULSEGATE_WS_PORT, PULSEGATE_HTTP_PORT,
PULSEGATE_DATA_DIR, PULSEGATE_ALLOW_ANONYMOUS=true|false, PULSEGATE_CREDENTIALS_FILE,
PULSEGATE_INFLUX_URL (e.g. http://127.0.0.1:8086/pulsegate), PULSEGATE_LOG_LEVEL,
PULSEGATE_MQTT_TLS_PORT, PULSEGATE_WSS_PORT, PULSEGATE_CLIENT_CERTIFICATES=off|optional|required,
PULSEGATE_HTTP_TLS=true|false, PULSEGATE_TLS_CERT_FILE, PULSEGATE_TLS_KEY_FILE, PULSEGATE_TLS_CA_FILE,
PULSEGATE_HTTP_ALLOW_ANONYMOUS=true|false (streams without a token).
A port of 0 picks a free port; the bound ports are logged. With TLS on, SIGHUP re-reads the TLS files.

One gateway per data directory: start takes <dataDir>/pulsegate.lock and refuses to run
while another live gateway holds it (a lock left by a killed process is taken over).

Exit codes: 0 ok, 1 runtime failure (or a refused start, or a shutdown that did not finish
within runtime.shutdownTimeoutMs), 2 usage error, 3 invalid configuration.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL(import.meta.url.includes('/dist/') ? '../../package.json' : '../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP);
    return command === undefined ? 2 : 0;
  }
  // `pulsegate start --help` and the like: the one help text covers every command.
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(HELP);
    return 0;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  switch (command) {
    case 'start': {
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' } }, strict: true });
      const config = loadConfig(values.config === undefined ? {} : { file: values.config });
      const { runGateway } = await import('./main.js');
      return runGateway(config);
    }
    case 'check-config': {
      const { positionals } = parseArgs({ args: rest, allowPositionals: true, strict: true });
      if (positionals.length !== 1) throw usage('check-config takes exactly one FILE');
      const config = loadConfig({ file: positionals[0]! });
      // What start checks beyond the schema: the Sparkplug B field mapping against the kinds.
      if (config.ingest.sparkplug.enabled) createSparkplugMapping(config.ingest.sparkplug, createKindRegistry());
      process.stdout.write(`${positionals[0]}: ok\n${JSON.stringify(config, null, 2)}\n`);
      return 0;
    }
    case 'hash-secret': {
      const { positionals } = parseArgs({ args: rest, allowPositionals: true, strict: true });
      const secret = positionals[0] ?? readFileSync(0, 'utf8').replace(/\r?\n$/, '');
      if (secret.length < 8) throw usage('a device secret must be at least 8 characters');
      process.stdout.write(`${await hashSecret(secret)}\n`);
      return 0;
    }
    case 'log': {
      const { runLogCommand } = await import('./log/log-cli.js');
      return runLogCommand(rest, process.stdout);
    }
    case 'push-proxy': {
      if (rest[0] === 'generate-vapid-keys') {
        const { values } = parseArgs({ args: rest.slice(1), options: { out: { type: 'string', short: 'o' } }, strict: true });
        if (values.out === undefined) throw usage('generate-vapid-keys needs --out FILE');
        const { generateVapidKeyFile } = await import('./push-proxy/vapid-keys.js');
        const keys = generateVapidKeyFile(values.out);
        process.stdout.write(`wrote ${values.out}\npublic key (applicationServerKey): ${keys.publicKey}\n`);
        return 0;
      }
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' } }, strict: true });
      const config = loadConfig(values.config === undefined ? {} : { file: values.config });
      const { runPushProxy } = await import('./push-proxy/push-proxy.js');
      return runPushProxy(config);
    }
    default:
      throw usage(`unknown command "${command}"`);
  }
}

class UsageError extends Error {}

/** Startup refusals whose message says what to do. */
const STARTUP_REFUSALS: readonly ErrorCode[] = ['GW_ERR_DATA_DIR_LOCKED', 'GW_ERR_CHECKPOINT_AHEAD', 'GW_ERR_LOG_CORRUPT', 'GW_ERR_VAPID_KEYS'];
function usage(message: string): UsageError {
  return new UsageError(message);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (isGatewayError(err, 'GW_ERR_CONFIG_INVALID') || isGatewayError(err, 'GW_ERR_CONFIG_READ')) {
      process.stderr.write(`pulsegate: ${err.message}\n`);
      process.exitCode = 3;
    } else if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`pulsegate: ${(err as Error).message}\n\n${HELP}`);
      process.exitCode = 2;
    } else if (STARTUP_REFUSALS.some((code) => isGatewayError(err, code))) {
      // A refusal that names its own fix: the message is the whole story, a stack adds nothing.
      process.stderr.write(`pulsegate: ${(err as GatewayError).code}: ${(err as Error).message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`pulsegate: ${isGatewayError(err) ? `${err.code}: ` : ''}${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);

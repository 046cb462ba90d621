import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { GatewayError } from '../errors.js';
import type { GatewayConfig } from './config.js';
import { readTlsMaterial } from '../tls.js';
import { configSchema } from './schema.js';

/** Environment overrides: the only place process.env is read. Values are parsed per type. */
export const ENV_OVERRIDES = {
  PULSEGATE_MQTT_PORT: { path: ['mqtt', 'port'], type: 'int' },
  PULSEGATE_WS_PORT: { path: ['mqtt', 'wsPort'], type: 'int' },
  PULSEGATE_HTTP_PORT: { path: ['http', 'port'], type: 'int' },
  PULSEGATE_DATA_DIR: { path: ['dataDir'], type: 'string' },
  PULSEGATE_ALLOW_ANONYMOUS: { path: ['mqtt', 'allowAnonymous'], type: 'bool' },
  PULSEGATE_CREDENTIALS_FILE: { path: ['mqtt', 'credentialsFile'], type: 'string' },
  PULSEGATE_INFLUX_URL: { path: ['sinks', 'influxUrl'], type: 'string' },
  PULSEGATE_LOG_LEVEL: { path: ['logLevel'], type: 'string' },
  PULSEGATE_MQTT_TLS_PORT: { path: ['mqtt', 'tlsPort'], type: 'int' },
  PULSEGATE_WSS_PORT: { path: ['mqtt', 'wssPort'], type: 'int' },
  PULSEGATE_CLIENT_CERTIFICATES: { path: ['mqtt', 'clientCertificates'], type: 'string' },
  PULSEGATE_HTTP_TLS: { path: ['http', 'tls'], type: 'bool' },
  PULSEGATE_TLS_CERT_FILE: { path: ['tls', 'certFile'], type: 'string' },
  PULSEGATE_TLS_KEY_FILE: { path: ['tls', 'keyFile'], type: 'string' },
  PULSEGATE_TLS_CA_FILE: { path: ['tls', 'caFile'], type: 'string' },
  PULSEGATE_PUSH_PROXY_PORT: { path: ['pushProxy', 'port'], type: 'int' },
  PULSEGATE_PUSH_PROXY_GATEWAY_URL: { path: ['pushProxy', 'gatewayUrl'], type: 'string' },
} as const satisfies Record<string, { path: readonly string[]; type: 'int' | 'string' | 'bool' }>;

export interface LoadConfigOptions {
  /** Path of a YAML or JSON file; omitted = defaults only. */
  file?: string;
  /** Defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Applied after the file and before env (used by the demo and by tests). */
  overrides?: Record<string, unknown>;
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validate = ajv.compile(configSchema);

/** Loads, validates (listing every problem) and deep-freezes the configuration. */
export function loadConfig(options: LoadConfigOptions = {}): GatewayConfig {
  const problems: string[] = [];
  let raw: Record<string, unknown> = {};
  if (options.file !== undefined) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (cause) {
      throw new GatewayError('GW_ERR_CONFIG_READ', `cannot read config file ${options.file}: ${(cause as Error).message}`, { cause });
    }
    try {
      const parsed: unknown = options.file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
      if (parsed === null || parsed === undefined) raw = {};
      else if (typeof parsed !== 'object' || Array.isArray(parsed)) problems.push('(root): must be an object');
      else raw = parsed as Record<string, unknown>;
    } catch (cause) {
      throw new GatewayError('GW_ERR_CONFIG_READ', `cannot parse config file ${options.file}: ${(cause as Error).message}`, { cause });
    }
  }
  // Copied: validation fills defaults in and the result is frozen; the caller's object stays theirs.
  if (options.overrides) deepMerge(raw, structuredClone(options.overrides));
  applyEnv(raw, options.env ?? process.env, problems);

  if (!validate(raw)) problems.push(...withoutNullBranches(validate.errors ?? []).map(formatAjvError));
  resolveMqttBounds(raw['mqtt'], problems);
  if (problems.length > 0) {
    throw new GatewayError('GW_ERR_CONFIG_INVALID', `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`, {
      details: { problems },
    });
  }
  const config = raw as unknown as Mutable<GatewayConfig>;
  const base = options.file !== undefined ? resolve(options.file, '..') : process.cwd();
  config.dataDir = absolute(base, config.dataDir);
  config.log.dir = config.log.dir === null ? resolve(config.dataDir, 'log') : absolute(base, config.log.dir);
  config.sinks.embeddedPath = config.sinks.embeddedPath === null ? resolve(config.dataDir, 'store.sqlite') : absolute(base, config.sinks.embeddedPath);
  if (config.mqtt.credentialsFile !== null) config.mqtt.credentialsFile = absolute(base, config.mqtt.credentialsFile);
  for (const k of ['certFile', 'keyFile', 'caFile'] as const) {
    const file = config.tls[k];
    if (file !== null) config.tls[k] = absolute(base, file);
  }
  config.pushProxy.dataDir = config.pushProxy.dataDir === null ? resolve(config.dataDir, 'push-proxy') : absolute(base, config.pushProxy.dataDir);
  config.pushProxy.vapidKeyFile = config.pushProxy.vapidKeyFile === null ? resolve(config.pushProxy.dataDir, 'vapid.json') : absolute(base, config.pushProxy.vapidKeyFile);
  // Needs the schema's shape, so it runs second: unreadable, non-PEM or mismatched files, and
  // TLS listeners without a certificate, are configuration errors too, all listed.
  const tlsProblems = readTlsMaterial(config).problems;
  if (tlsProblems.length > 0) {
    throw new GatewayError('GW_ERR_CONFIG_INVALID', `invalid configuration (${tlsProblems.length} problem${tlsProblems.length === 1 ? '' : 's'}):\n  - ${tlsProblems.join('\n  - ')}`, {
      details: { problems: tlsProblems },
    });
  }
  return deepFreeze(config);
}

/** Room in a PUBLISH besides its payload: topic length (2), a topic of up to 1018 bytes, packet id (2). */
export const PUBLISH_HEADROOM_BYTES = 1024;
const DEFAULT_MAX_PACKET_BYTES = 1_048_576;
/** [MQTT-2.2.3] the largest remaining length a fixed header can declare. */
const MAX_REMAINING_LENGTH = 268_435_455;

/** mqtt.maxPacketBytes: derived when null; otherwise it must leave room for a largest payload. */
function resolveMqttBounds(section: unknown, problems: string[]): void {
  const mqtt = section as { maxPayloadBytes: unknown; maxPacketBytes: unknown };
  // A section or value of the wrong type was reported by the schema already.
  if (typeof mqtt !== 'object' || mqtt === null || !Number.isInteger(mqtt.maxPayloadBytes)) return;
  if (mqtt.maxPacketBytes !== null && !Number.isInteger(mqtt.maxPacketBytes)) return;
  const needed = (mqtt.maxPayloadBytes as number) + PUBLISH_HEADROOM_BYTES;
  if (mqtt.maxPacketBytes === null) {
    mqtt.maxPacketBytes = Math.min(MAX_REMAINING_LENGTH, Math.max(DEFAULT_MAX_PACKET_BYTES, needed));
  } else if ((mqtt.maxPacketBytes as number) < needed) {
    problems.push(
      `mqtt.maxPacketBytes: must be at least mqtt.maxPayloadBytes + ${PUBLISH_HEADROOM_BYTES} (topic and packet id) = ${needed}, got ${mqtt.maxPacketBytes}`,
    );
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] extends object ? Mutable<T[K]> : T[K] };

function absolute(base: string, p: string): string {
  return isAbsolute(p) ? p : resolve(base, p);
}

function applyEnv(raw: Record<string, unknown>, env: Record<string, string | undefined>, problems: string[]): void {
  for (const [name, spec] of Object.entries(ENV_OVERRIDES)) {
    const text = env[name];
    if (text === undefined || text === '') continue;
    let value: unknown = text;
    if (spec.type === 'int') {
      if (!/^[0-9]+$/.test(text)) {
        problems.push(`${name}: must be a non-negative integer, got "${text}"`);
        continue;
      }
      value = Number(text);
    } else if (spec.type === 'bool') {
      if (text !== 'true' && text !== 'false') {
        problems.push(`${name}: must be "true" or "false", got "${text}"`);
        continue;
      }
      value = text === 'true';
    }
    let node = raw;
    for (const key of spec.path.slice(0, -1)) {
      const next = node[key];
      if (typeof next !== 'object' || next === null) node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
    node[spec.path[spec.path.length - 1]!] = value;
  }
}

/**
 * A nullable key is `anyOf: [X, null]`; when it fails, ajv reports X's error, "must be null" and
 * "must match a schema in anyOf". Only X's error says anything to the operator.
 */
function withoutNullBranches(errors: readonly ErrorObject[]): ErrorObject[] {
  const nullable = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath));
  const kept = errors.filter((e) => !(nullable.has(e.instancePath) && (e.keyword === 'anyOf' || (e.keyword === 'type' && e.params['type'] === 'null'))));
  // Several errors at one path (e.g. an anyOf of two non-null schemas) are kept; duplicates are not.
  return kept.filter((e, i) => kept.findIndex((o) => o.instancePath === e.instancePath && o.message === e.message) === i);
}

function formatAjvError(e: ErrorObject): string {
  const where = e.instancePath === '' ? '(root)' : e.instancePath.slice(1).replaceAll('/', '.');
  if (e.keyword === 'additionalProperties') return `${where}: unknown key "${String(e.params['additionalProperty'])}"`;
  if (e.keyword === 'enum') return `${where}: must be one of ${JSON.stringify(e.params['allowedValues'])}`;
  return `${where}: ${e.message ?? 'is invalid'}`;
}

function deepMerge(target: Record<string, unknown>, source: Record<string, unknown>): void {
  for (const [k, v] of Object.entries(source)) {
    const cur = target[k];
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && cur !== null && typeof cur === 'object' && !Array.isArray(cur)) {
      deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>);
    } else target[k] = v;
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

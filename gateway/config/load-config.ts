import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { GatewayError } from '../errors.js';
import type { GatewayConfig } from './config.js';
import { readTlsMaterial } from '../tls.js';
import { configSchema } from './schema.js';
import { compileAlertRules } from './alert-rules.js';
import cron from 'node-cron';
import { kindsFromDefinitions } from '../kinds/kind-definitions.js';
import { BUILTIN_KINDS, createConfiguredKindRegistry, type KindRegistry } from '../kinds/registry.js';
import type { KindDefinition, SourceDefinition } from './config.js';
import type { KindDescriptor } from '../kinds/kind-descriptor.js';
import { checkSources } from './sources.js';

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
  PULSEGATE_HTTP_ALLOW_ANONYMOUS: { path: ['http', 'allowAnonymous'], type: 'bool' },
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

  const schemaErrors = validate(raw) ? [] : withoutNullBranches(validate.errors ?? []);
  problems.push(...schemaErrors.map(formatAjvError));
  resolveMqttBounds(raw['mqtt'], problems);
  checkPassthrough(raw['mqtt'], problems);
  checkKindsAndSources(raw, schemaErrors, problems);
  // Against the kinds of this config (the built-in ones and kinds.<name>), once those are sound.
  const kinds = problems.length === 0 ? createConfiguredKindRegistry((raw as unknown as GatewayConfig).kinds) : null;
  if (kinds !== null) checkAlerts(raw as unknown as GatewayConfig, kinds, problems);
  if (kinds !== null && problems.length === 0) readWebhookSecrets(raw as unknown as GatewayConfig, kinds, options.file !== undefined ? resolve(options.file, '..') : process.cwd(), options.env ?? process.env, problems);
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
  for (const k of ['jwtSecretFile', 'jwtPublicKeyFile'] as const) {
    const file = config.delivery.auth[k];
    if (file !== null) config.delivery.auth[k] = absolute(base, file);
  }
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

/** Alert rules against the kinds and window sizes, and the silence schedule: every problem listed. */
function checkAlerts(config: GatewayConfig, kinds: KindRegistry, problems: string[]): void {
  problems.push(...compileAlertRules(config.alerts, kinds, config.window).problems);
  if (!cron.validate(config.alerts.silenceSchedule)) problems.push(`alerts.silenceSchedule: not a valid node-cron expression: "${config.alerts.silenceSchedule}"`);
}

/**
 * delivery.webhooks: unique names, known kinds and rules in the filters, and exactly one of
 * secretFile / secretEnv, read now (a missing file or variable is a config error). The secret is
 * attached as a non-enumerable `secret`, so printing the config never shows it; secretFile is
 * made absolute.
 */
function readWebhookSecrets(config: GatewayConfig, kinds: KindRegistry, base: string, env: Record<string, string | undefined>, problems: string[]): void {
  const ruleIds = new Set(compileAlertRules(config.alerts, kinds, config.window).rules.map((r) => r.id));
  const names = new Set<string>();
  config.delivery.webhooks.forEach((w, i) => {
    const at = `delivery.webhooks[${i}]`;
    if (names.has(w.name)) problems.push(`${at}.name: "${w.name}" is used twice`);
    names.add(w.name);
    for (const k of w.filter.sensorKinds) if (!kinds.has(k)) problems.push(`${at}.filter.sensorKinds: unknown sensor kind "${k}" (known: ${[...kinds.keys()].join(', ')})`);
    for (const r of w.filter.rules) if (!ruleIds.has(r)) problems.push(`${at}.filter.rules: no alert rule has the id "${r}"`);
    if ((w.secretFile === null) === (w.secretEnv === null)) {
      problems.push(`${at}: exactly one of secretFile and secretEnv must be set (the HMAC signing secret)`);
      return;
    }
    let secret: string;
    if (w.secretFile !== null) {
      const file = absolute(base, w.secretFile);
      (w as { secretFile: string }).secretFile = file;
      try {
        secret = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
      } catch (cause) {
        problems.push(`${at}.secretFile: cannot read ${file}: ${(cause as Error).message}`);
        return;
      }
    } else {
      secret = env[w.secretEnv!] ?? '';
      if (secret === '') {
        problems.push(`${at}.secretEnv: the environment variable ${w.secretEnv!} is not set or empty`);
        return;
      }
    }
    if (secret.length < 16) {
      problems.push(`${at}: the secret must be at least 16 characters, got ${secret.length}`);
      return;
    }
    Object.defineProperty(w, 'secret', { value: secret, enumerable: false });
  });
}
/**
 * What the schema cannot check about kinds.<name> and ingest.sources (fields a tag or a source
 * names, ranges, topic patterns...). An entry the schema already found wrong is not looked at
 * again, so each mistake is told once; every other entry is, so every mistake is told.
 */
function checkKindsAndSources(raw: Record<string, unknown>, schemaErrors: readonly ErrorObject[], problems: string[]): void {
  const wrong = (prefix: string): boolean => schemaErrors.some((e) => e.instancePath === prefix || e.instancePath.startsWith(`${prefix}/`));
  const pointer = (s: string): string => s.replaceAll('~', '~0').replaceAll('/', '~1');
  const kindsSection = raw['kinds'];
  const defs: Record<string, KindDefinition> = {};
  const opaque = new Map<string, Set<string>>();
  if (isObject(kindsSection)) {
    for (const [name, def] of Object.entries(kindsSection)) {
      const at = `/kinds/${pointer(name)}`;
      if (!isObject(def) || !isObject(def['fields'])) continue;
      // The parts the schema found wrong are left out (told once); the rest is checked.
      const fields: Record<string, unknown> = {};
      const unknown = new Set<string>();
      for (const [f, fdef] of Object.entries(def['fields'])) {
        if (wrong(`${at}/fields/${pointer(f)}`)) unknown.add(f);
        else fields[f] = fdef;
      }
      const window = isObject(def['window']) && !wrong(`${at}/window/groupBy`) ? def['window'] : {};
      const aggregates = Array.isArray(window['aggregates']) ? window['aggregates'].filter((_a, i) => !wrong(`${at}/window/aggregates/${i}`)) : [{ ops: ['count'] }];
      defs[name] = {
        fields: fields as KindDefinition['fields'],
        tags: wrong(`${at}/tags`) || !Array.isArray(def['tags']) ? [] : (def['tags'] as string[]),
        ...(typeof def['measurement'] === 'string' && !wrong(`${at}/measurement`) ? { measurement: def['measurement'] } : {}),
        window: {
          groupBy: Array.isArray(window['groupBy']) ? (window['groupBy'] as string[]) : [],
          aggregates: aggregates as KindDefinition['window']['aggregates'],
          sizesMs: null,
        },
      };
      opaque.set(name, unknown);
    }
  }
  const taken = { names: new Set(BUILTIN_KINDS.map((k) => k.name)), measurements: new Set(BUILTIN_KINDS.flatMap((k) => [k.measurement, `${k.measurement}_window`])) };
  const configured = kindsFromDefinitions(defs, 'kinds', problems, taken, opaque);
  const sources = (raw['ingest'] as { sources?: unknown } | undefined)?.sources;
  if (!Array.isArray(sources)) return;
  const known = new Map<string, KindDescriptor>([...BUILTIN_KINDS, ...configured].map((k) => [k.name, k]));
  // A kind with problems (told already) still has its fields: a source naming it is checked against them.
  for (const [name, def] of Object.entries(defs)) {
    if (known.has(name)) continue;
    const fields = Object.fromEntries([
      ...Object.entries(def.fields).map(([f, d]) => [f, { type: 'bool', required: (d as { required?: unknown }).required === true }] as const),
      ...[...(opaque.get(name) ?? [])].map((f) => [f, { type: 'bool', required: false }] as const),
    ]);
    known.set(name, { name, measurement: name, fields, tags: [], window: { groupBy: [], aggregates: [] } });
  }
  const reported = new Set(isObject(kindsSection) ? Object.keys(kindsSection).filter((n) => !known.has(n)) : []);
  const checkable: SourceDefinition[] = [];
  const indexOf: number[] = [];
  sources.forEach((s: unknown, i) => {
    const at = `/ingest/sources/${i}`;
    if (!isObject(s) || typeof s['topic'] !== 'string' || typeof s['kind'] !== 'string' || !isObject(s['fields'])) return;
    const fields = Object.fromEntries(Object.entries(s['fields']).filter((e): e is [string, string] => typeof e[1] === 'string'));
    const text = (key: string): string | null => (typeof s[key] === 'string' && !wrong(`${at}/${key}`) ? (s[key] as string) : null);
    checkable.push({
      topic: s['topic'],
      kind: s['kind'],
      fields,
      tsPath: text('tsPath'),
      tsFormat: wrong(`${at}/tsFormat`) ? null : (text('tsFormat') as SourceDefinition['tsFormat']),
      seqPath: text('seqPath'),
      dedupHorizonMs: 0,
    });
    indexOf.push(i);
  });
  const found: string[] = [];
  checkSources(checkable, known, found, reported);
  // checkSources numbers the entries it was given; report them by their place in the file.
  problems.push(...found.map((p) => p.replace(/^ingest\.sources\.(\d+)/, (_m, n: string) => `ingest.sources.${indexOf[Number(n)]}`)));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
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

/** First topic levels the gateway owns: never passthrough (its devices' readings, its alerts, `$` topics). */
const RESERVED_FIRST_LEVELS = ['sensors', 'alerts'];

/** Why `filter` cannot be an mqtt.passthrough filter, or null when it can. */
export function passthroughFilterProblem(filter: string): string | null {
  if (filter.length === 0) return 'an empty filter matches nothing [MQTT-4.7.3-1]';
  if (filter.includes('\u0000')) return 'contains U+0000 [MQTT-1.5.3-2]';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '"#" must be a whole level and the last one [MQTT-4.7.1-2]';
    if (level.includes('+') && level !== '+') return '"+" must be a whole level [MQTT-4.7.1-3]';
  }
  const first = levels[0]!;
  if (first.startsWith('$')) return '"$" topics are the broker\'s and the gateway\'s';
  if (RESERVED_FIRST_LEVELS.includes(first)) return `"${first}/" topics are the gateway's own (readings and alerts are never passed through)`;
  return null;
}

/** mqtt.passthrough: every filter that cannot be one is listed. */
function checkPassthrough(section: unknown, problems: string[]): void {
  const filters = (section as { passthrough?: unknown } | null)?.passthrough;
  // A wrong type was reported by the schema already.
  if (!Array.isArray(filters)) return;
  filters.forEach((f: unknown, i) => {
    if (typeof f !== 'string') return;
    const why = passthroughFilterProblem(f);
    if (why !== null) problems.push(`mqtt.passthrough[${i}]: ${JSON.stringify(f)} is not a usable topic filter: ${why}`);
  });
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

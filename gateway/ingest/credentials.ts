import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { GatewayError } from '../errors.js';
import type { PasswordHasher } from './password-hasher.js';
import { isValidDeviceId } from './topic.js';

/**
 * Device credentials: a YAML or JSON file
 *
 *   devices:
 *     - username: athlete-7                     # = the device id in its topic
 *       secret: scrypt$16384$8$1$<salt>$<hash>  # from `pulsegate hash-secret`
 *       subscribe: ["alerts/#"]                 # optional, topic filters it may subscribe to
 *       publish: ["site/hvac/#"]                # optional, mqtt.passthrough topics it may publish to
 *
 * A device may publish only under sensors/<kind>/<username>. Secrets are stored hashed (scrypt).
 * Its MQTT client id is bound to its username (see `ownerOfClientId`).
 */
export interface DeviceCredential {
  readonly username: string;
  readonly secret: string;
  readonly subscribe: readonly string[];
  readonly publish?: readonly string[];
}

export interface CredentialStore {
  /**
   * Resolves true when the username exists and the secret matches its hash. An unknown username
   * is checked against a dummy hash with the parameters of the file's first entry, so it costs
   * one hash like a wrong secret does and its timing does not tell which usernames exist.
   * Rejects when the hasher refuses (GW_ERR_AUTH_BUSY) or fails.
   */
  verify(username: string, secret: Buffer, hasher: PasswordHasher): Promise<boolean>;
  subscribeFilters(username: string): readonly string[];
  /** Topic filters outside its sensor topics (mqtt.passthrough topics) the device may publish to; none by default. */
  publishFilters(username: string): readonly string[];
  /** Whether `username` is a credentialed device. */
  has(username: string): boolean;
  /**
   * The credentialed username a client id belongs to: the client id itself, or the longest
   * username `u` such that the client id starts with `u` + CLIENT_ID_SEPARATOR; undefined if none.
   * Longest wins so that with users `a` and `a:b`, the id `a:b:x` is `a:b`'s, never `a`'s.
   */
  ownerOfClientId(clientId: string): string | undefined;
  readonly size: number;
  /** Whether the file lists this device. */
  has(username: string): boolean;
}

/** `<username>:<anything>` is a client id of `<username>` (mqtt.clientIdPolicy "username-prefix"). */
export const CLIENT_ID_SEPARATOR = ':';
/** Usernames are device ids: at most 128 characters (isValidDeviceId). */
const MAX_USERNAME = 128;

/** Filters of a device that lists none (or that only its client certificate names). */
export const DEFAULT_SUBSCRIBE = ['alerts/#'] as const;

function scrypt(password: Buffer | string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashSecret(secret: string, N = 16384, r = 8, p = 1): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(secret, salt, 32, { N, r, p });
  return `scrypt$${N}$${r}$${p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

export interface ParsedHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  key: Buffer;
}

function parseHash(text: string): ParsedHash | null {
  const parts = text.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return null;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![N, r, p].every((n) => Number.isInteger(n) && n > 0)) return null;
  const salt = Buffer.from(parts[4]!, 'base64');
  const key = Buffer.from(parts[5]!, 'base64');
  if (salt.length < 8 || key.length < 16) return null;
  return { N, r, p, salt, key };
}

export function loadCredentials(file: string): CredentialStore {
  let doc: unknown;
  try {
    const text = readFileSync(file, 'utf8');
    doc = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (cause) {
    throw new GatewayError('GW_ERR_CREDENTIALS_INVALID', `cannot read credentials file ${file}: ${(cause as Error).message}`, { cause });
  }
  const problems: string[] = [];
  const entries = new Map<string, CredentialEntry>();
  const devices = (doc as { devices?: unknown } | null)?.devices;
  if (!Array.isArray(devices)) problems.push('"devices" must be a list');
  else {
    devices.forEach((d: unknown, i: number) => {
      const e = d as Partial<DeviceCredential> | null;
      if (e === null || typeof e !== 'object') return problems.push(`devices[${i}]: must be an object`);
      if (typeof e.username !== 'string' || !isValidDeviceId(e.username)) return problems.push(`devices[${i}].username: must be 1-128 of [A-Za-z0-9_.:-]`);
      if (entries.has(e.username)) return problems.push(`devices[${i}].username: "${e.username}" is listed twice`);
      const hash = typeof e.secret === 'string' ? parseHash(e.secret) : null;
      if (hash === null) return problems.push(`devices[${i}].secret: must be a hash from \`pulsegate hash-secret\` (scrypt$N$r$p$salt$hash)`);
      const subscribe = e.subscribe ?? DEFAULT_SUBSCRIBE;
      if (!Array.isArray(subscribe) || !subscribe.every((s) => typeof s === 'string')) return problems.push(`devices[${i}].subscribe: must be a list of topic filters`);
      const publish = e.publish ?? [];
      if (!Array.isArray(publish) || !publish.every((s) => typeof s === 'string' && s.length > 0)) return problems.push(`devices[${i}].publish: must be a list of topic filters`);
      entries.set(e.username, { hash, subscribe, publish });
      return undefined;
    });
  }
  if (problems.length > 0) {
    throw new GatewayError('GW_ERR_CREDENTIALS_INVALID', `invalid credentials file ${file}:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  }
  return createCredentialStore(entries);
}

export interface CredentialEntry {
  readonly hash: ParsedHash;
  readonly subscribe: readonly string[];
  readonly publish?: readonly string[];
}

/** Exported for unit tests; `loadCredentials` is the way in. */
export function createCredentialStore(entries: ReadonlyMap<string, CredentialEntry>): CredentialStore {
  const first = entries.values().next().value?.hash;
  const dummy: ParsedHash = {
    N: first?.N ?? 16384,
    r: first?.r ?? 8,
    p: first?.p ?? 1,
    salt: randomBytes(first?.salt.length ?? 16),
    key: randomBytes(first?.key.length ?? 32),
  };
  return {
    size: entries.size,
    async verify(username, secret, hasher) {
      const e = entries.get(username);
      // Same work either way: one hash, then one constant-time compare.
      const target = e?.hash ?? dummy;
      const key = await hasher.scrypt(secret, target.salt, target.key.length, target);
      const match = key.length === target.key.length && timingSafeEqual(key, target.key);
      return match && e !== undefined;
    },
    subscribeFilters(username) {
      return entries.get(username)?.subscribe ?? [];
    },
    publishFilters(username) {
      return entries.get(username)?.publish ?? [];
    },
    has(username) {
      return entries.has(username);
    },
    ownerOfClientId(clientId) {
      if (entries.has(clientId)) return clientId;
      // Usernames are at most MAX_USERNAME chars, so a 64 KiB client id costs at most that many steps.
      for (let i = clientId.lastIndexOf(CLIENT_ID_SEPARATOR, MAX_USERNAME); i > 0; i = clientId.lastIndexOf(CLIENT_ID_SEPARATOR, i - 1)) {
        const u = clientId.slice(0, i);
        if (entries.has(u)) return u;
      }
      return undefined;
    },
  };
}

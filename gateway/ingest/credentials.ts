import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { GatewayError } from '../errors.js';
import { isValidDeviceId } from './topic.js';

/**
 * Device credentials: a YAML or JSON file
 *
 *   devices:
 *     - username: athlete-7                     # = the device id in its topic
 *       secret: scrypt$16384$8$1$<salt>$<hash>  # from `pulsegate hash-secret`
 *       subscribe: ["alerts/#"]                 # optional, topic filters it may subscribe to
 *
 * A device may publish only under sensors/<kind>/<username>. Secrets are stored hashed (scrypt).
 */
export interface DeviceCredential {
  readonly username: string;
  readonly secret: string;
  readonly subscribe: readonly string[];
}

export interface CredentialStore {
  /** Resolves true when the username exists and the secret matches its hash. */
  verify(username: string, secret: Buffer): Promise<boolean>;
  subscribeFilters(username: string): readonly string[];
  readonly size: number;
  /** Whether the file lists this device. */
  has(username: string): boolean;
}

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

interface ParsedHash {
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
  const entries = new Map<string, { hash: ParsedHash; subscribe: readonly string[] }>();
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
      entries.set(e.username, { hash, subscribe });
      return undefined;
    });
  }
  if (problems.length > 0) {
    throw new GatewayError('GW_ERR_CREDENTIALS_INVALID', `invalid credentials file ${file}:\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  }
  return {
    size: entries.size,
    async verify(username, secret) {
      const e = entries.get(username);
      if (e === undefined) return false;
      const key = await scrypt(secret, e.hash.salt, e.hash.key.length, { N: e.hash.N, r: e.hash.r, p: e.hash.p, maxmem: 256 * e.hash.N * e.hash.r });
      return timingSafeEqual(key, e.hash.key);
    },
    subscribeFilters(username) {
      return entries.get(username)?.subscribe ?? [];
    },
    has(username) {
      return entries.has(username);
    },
  };
}

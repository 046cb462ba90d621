import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import webpush from 'web-push';
import { GatewayError } from '../errors.js';

/** The application server's key pair (RFC 8292 section 3.2): P-256, base64url, as web-push uses them. */
export interface VapidKeys {
  /** Uncompressed point, 65 bytes: the `applicationServerKey` of PushManager.subscribe. */
  readonly publicKey: string;
  /** 32 bytes. */
  readonly privateKey: string;
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/** Writes a fresh key pair to `file` (mode 0600); refuses to overwrite one. */
export function generateVapidKeyFile(file: string): VapidKeys {
  const keys = webpush.generateVAPIDKeys();
  mkdirSync(dirname(file), { recursive: true });
  try {
    writeFileSync(file, `${JSON.stringify({ publicKey: keys.publicKey, privateKey: keys.privateKey }, null, 2)}\n`, { flag: 'wx', mode: 0o600 });
  } catch (cause) {
    const exists = (cause as NodeJS.ErrnoException).code === 'EEXIST';
    throw new GatewayError('GW_ERR_VAPID_KEYS', exists ? `${file} exists already; remove it first (subscriptions made with its public key stop working)` : `cannot write ${file}: ${(cause as Error).message}`, { cause });
  }
  chmodSync(file, 0o600);
  return keys;
}

/** Reads and checks a key file written by generateVapidKeyFile. */
export function readVapidKeyFile(file: string): VapidKeys {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (cause) {
    const missing = (cause as NodeJS.ErrnoException).code === 'ENOENT';
    throw new GatewayError(
      'GW_ERR_VAPID_KEYS',
      missing ? `VAPID key file ${file} does not exist; make one with: pulsegate push-proxy generate-vapid-keys --out ${file}` : `cannot read VAPID key file ${file}: ${(cause as Error).message}`,
      { cause },
    );
  }
  const o = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
  const problems: string[] = [];
  const check = (name: 'publicKey' | 'privateKey', bytes: number): void => {
    const v = o[name];
    if (typeof v !== 'string' || !B64URL.test(v) || Buffer.from(v, 'base64url').length !== bytes) problems.push(`${name} must be ${bytes} bytes in base64url`);
  };
  check('publicKey', 65);
  check('privateKey', 32);
  if (problems.length > 0) throw new GatewayError('GW_ERR_VAPID_KEYS', `VAPID key file ${file}: ${problems.join('; ')}`);
  return { publicKey: o['publicKey'] as string, privateKey: o['privateKey'] as string };
}

import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { jwtVerify, type JWTPayload } from 'jose';
import type { DeliveryAuthConfig } from '../config/config.js';
import { GatewayError } from '../errors.js';
import { globWithin } from './stream-filter.js';

/**
 * What a subscriber may read (Mercure's subscriber JWT, with claims of our own): from the
 * `pulsegate` claim of a verified bearer token, `{ streams?, kinds?, devices? }` (an absent list
 * = no restriction). `anonymous` (http.allowAnonymous without a token) may read everything.
 */
export interface SubscriberClaims {
  readonly subject: string | null;
  readonly streams: readonly string[] | null;
  readonly kinds: readonly string[] | null;
  /** Device id globs. */
  readonly devices: readonly string[] | null;
  /** Token expiry, ms since the epoch; null = none (anonymous). */
  readonly expiresAt: number | null;
}

export const ANONYMOUS: SubscriberClaims = { subject: null, streams: null, kinds: null, devices: null, expiresAt: null };

export interface SubscriberAuth {
  /** True when a request without a token is let in. */
  readonly allowAnonymous: boolean;
  /** Verifies the token (the `Authorization: Bearer` header or `access_token`), or throws GW_ERR_TOKEN_INVALID. */
  authenticate(token: string | null): Promise<SubscriberClaims>;
}

const HMAC_ALGS = ['HS256', 'HS384', 'HS512'];

function keyAlgorithms(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    case 'rsa-pss':
      return ['PS256', 'PS384', 'PS512'];
    case 'ec':
      return ['ES256', 'ES384', 'ES512'];
    case 'ed25519':
    case 'ed448':
      return ['EdDSA', 'Ed25519'];
    default:
      return [];
  }
}

/**
 * Reads delivery.auth's key files once (problems are configuration errors, all listed) and
 * returns the verifier of subscriber tokens.
 */
export function createSubscriberAuth(config: DeliveryAuthConfig, allowAnonymous: boolean): SubscriberAuth {
  const problems: string[] = [];
  let secret: Uint8Array | null = null;
  let publicKey: KeyObject | null = null;
  if (config.jwtSecretFile !== null) {
    try {
      const text = readFileSync(config.jwtSecretFile, 'utf8').replace(/\r?\n$/, '');
      if (text.length < 32) problems.push(`delivery.auth.jwtSecretFile: the secret must have at least 32 characters (RFC 7518 §3.2), got ${text.length}`);
      secret = new TextEncoder().encode(text);
    } catch (err) {
      problems.push(`delivery.auth.jwtSecretFile: cannot read ${config.jwtSecretFile}: ${(err as Error).message}`);
    }
  }
  if (config.jwtPublicKeyFile !== null) {
    try {
      publicKey = createPublicKey(readFileSync(config.jwtPublicKeyFile, 'utf8'));
      if (keyAlgorithms(publicKey).length === 0) problems.push(`delivery.auth.jwtPublicKeyFile: unsupported key type ${String(publicKey.asymmetricKeyType)}`);
    } catch (err) {
      problems.push(`delivery.auth.jwtPublicKeyFile: not a PEM public key (${config.jwtPublicKeyFile}): ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) {
    throw new GatewayError('GW_ERR_CONFIG_INVALID', `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`, { details: { problems } });
  }
  const algorithms = [...(secret !== null ? HMAC_ALGS : []), ...(publicKey !== null ? keyAlgorithms(publicKey) : [])];

  return {
    allowAnonymous,
    async authenticate(token) {
      if (token === null) {
        if (allowAnonymous) return ANONYMOUS;
        throw new GatewayError('GW_ERR_TOKEN_INVALID', 'a bearer token is required (Authorization: Bearer <JWT> or access_token=)');
      }
      if (algorithms.length === 0) throw new GatewayError('GW_ERR_TOKEN_INVALID', 'no token can be verified: delivery.auth has no jwtSecretFile nor jwtPublicKeyFile');
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(
          token,
          (header) => {
            if (HMAC_ALGS.includes(header.alg) && secret !== null) return secret;
            if (publicKey !== null) return publicKey;
            throw new Error(`algorithm ${header.alg} is not accepted`);
          },
          { algorithms, ...(config.issuer !== null ? { issuer: config.issuer } : {}), ...(config.audience !== null ? { audience: config.audience } : {}) },
        ));
      } catch (err) {
        // jose's messages name the failed check (signature, "exp", "iss", "aud"); never the token.
        throw new GatewayError('GW_ERR_TOKEN_INVALID', `bearer token refused: ${(err as Error).message}`);
      }
      return claimsOf(payload);
    },
  };
}

function stringList(v: unknown, name: string): readonly string[] | null {
  if (v === undefined) return null;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new GatewayError('GW_ERR_TOKEN_INVALID', `bearer token refused: claim pulsegate.${name} must be a list of strings`);
  return v as string[];
}

function claimsOf(payload: JWTPayload): SubscriberClaims {
  const own = payload['pulsegate'];
  if (own !== undefined && (typeof own !== 'object' || own === null || Array.isArray(own))) {
    throw new GatewayError('GW_ERR_TOKEN_INVALID', 'bearer token refused: claim pulsegate must be an object');
  }
  const o = (own ?? {}) as Record<string, unknown>;
  return {
    subject: typeof payload.sub === 'string' ? payload.sub : null,
    streams: stringList(o['streams'], 'streams'),
    kinds: stringList(o['kinds'], 'kinds'),
    devices: stringList(o['devices'], 'devices'),
    expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : null,
  };
}

function forbidden(message: string): GatewayError {
  return new GatewayError('GW_ERR_FORBIDDEN', message);
}

/**
 * Checks what a request asks for explicitly against the claims (403 when outside); what it
 * leaves open is narrowed to the claims by the caller (claims are ANDed into every stream's filter).
 */
export function checkWithinClaims(claims: SubscriberClaims, asked: { stream: string; kinds: readonly string[]; devices: readonly string[] }): void {
  if (claims.streams !== null && !claims.streams.includes(asked.stream)) throw forbidden(`the token does not allow stream ${asked.stream}`);
  if (claims.kinds !== null) {
    for (const k of asked.kinds) if (!claims.kinds.includes(k)) throw forbidden(`the token does not allow kind ${k}`);
  }
  if (claims.devices !== null) {
    for (const d of asked.devices) if (!claims.devices.some((c) => globWithin(d, c))) throw forbidden(`the token does not allow devices ${d}`);
  }
}

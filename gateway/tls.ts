/**
 * TLS material shared by the MQTT listeners (mqtts, wss) and the HTTP API: the server certificate
 * and key from `tls.certFile` / `tls.keyFile`, and the CA that signs device certificates
 * (`tls.caFile`, for mTLS). Every problem is found at startup and listed at once, like any other
 * configuration error, so a gateway never starts half-secured.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { GatewayConfig } from './config/config.js';
import { GatewayError } from './errors.js';

export interface TlsMaterial {
  /** PEM: the server certificate, optionally followed by its intermediates. */
  readonly cert: Buffer;
  readonly key: Buffer;
  /** PEM bundle of the CAs trusted to sign client certificates; null when none is configured. */
  readonly ca: Buffer | null;
}

export interface TlsLoadResult {
  /** Null when nothing uses TLS (or when there are problems). */
  readonly material: TlsMaterial | null;
  readonly problems: readonly string[];
  /** Not errors, but worth a log line (e.g. an expired server certificate). */
  readonly warnings: readonly string[];
}

type TlsRelevantConfig = Pick<GatewayConfig, 'tls' | 'mqtt' | 'http'>;

const PEM_CERT = '-----BEGIN CERTIFICATE-----';

/** The keys that switch a TLS listener on, for error messages. */
function tlsUsers(config: TlsRelevantConfig): string[] {
  const users: string[] = [];
  if (config.mqtt.tlsPort !== null) users.push('mqtt.tlsPort');
  if (config.mqtt.wssPort !== null) users.push('mqtt.wssPort');
  if (config.http.tls) users.push('http.tls');
  return users;
}

/**
 * Reads and checks the configured files: readable, PEM, the key belongs to the certificate, the
 * CA bundle parses, and OpenSSL accepts the combination. Never throws.
 */
export function readTlsMaterial(config: TlsRelevantConfig, now = Date.now()): TlsLoadResult {
  const { tls, mqtt } = config;
  const problems: string[] = [];
  const warnings: string[] = [];
  const users = tlsUsers(config);
  if (users.length > 0 || tls.keyFile !== null || tls.certFile !== null) {
    const by = users.length > 0 ? `required by ${users.join(', ')}` : 'tls.certFile and tls.keyFile go together';
    if (tls.certFile === null) problems.push(`tls.certFile: ${by}`);
    if (tls.keyFile === null) problems.push(`tls.keyFile: ${by}`);
  }
  if (mqtt.clientCertificates !== 'off') {
    if (tls.caFile === null) problems.push(`tls.caFile: required by mqtt.clientCertificates "${mqtt.clientCertificates}" (the CA that signs device certificates)`);
    if (mqtt.tlsPort === null && mqtt.wssPort === null) problems.push(`mqtt.clientCertificates: "${mqtt.clientCertificates}" needs mqtt.tlsPort or mqtt.wssPort (client certificates exist only over TLS)`);
  }

  const read = (key: string, file: string | null): Buffer | null => {
    if (file === null) return null;
    try {
      return readFileSync(file);
    } catch (cause) {
      problems.push(`${key}: cannot read ${file}: ${(cause as Error).message}`);
      return null;
    }
  };
  const cert = read('tls.certFile', tls.certFile);
  const key = read('tls.keyFile', tls.keyFile);
  const ca = read('tls.caFile', tls.caFile);

  let x509: X509Certificate | null = null;
  if (cert !== null) {
    x509 = parseCertificate(cert);
    if (x509 === null) problems.push(`tls.certFile: ${tls.certFile} is not a PEM certificate ("${PEM_CERT}")`);
    else if (Date.parse(x509.validTo) < now) warnings.push(`tls.certFile: the server certificate expired on ${x509.validTo}; clients that verify it will refuse to connect`);
  }
  let keyObject: KeyObject | null = null;
  if (key !== null) {
    try {
      keyObject = createPrivateKey(key);
    } catch (cause) {
      const encrypted = (cause as { code?: string }).code === 'ERR_MISSING_PASSPHRASE';
      problems.push(
        encrypted
          ? `tls.keyFile: ${tls.keyFile} is encrypted; give the gateway an unencrypted key (openssl pkey -in ${tls.keyFile} -out key.pem) and protect the file instead`
          : `tls.keyFile: ${tls.keyFile} is not a PEM private key: ${(cause as Error).message}`,
      );
    }
  }
  if (x509 !== null && keyObject !== null && !x509.checkPrivateKey(keyObject)) {
    problems.push(`tls.keyFile: ${tls.keyFile} does not match the certificate in tls.certFile ${tls.certFile}`);
  }
  if (ca !== null && parseCertificate(ca) === null) problems.push(`tls.caFile: ${tls.caFile} is not a PEM certificate bundle ("${PEM_CERT}")`);

  if (problems.length > 0) return { material: null, problems, warnings };
  if (cert === null || key === null) return { material: null, problems, warnings };
  const material: TlsMaterial = { cert, key, ca };
  try {
    // What the listeners will build; catches what the checks above do not (e.g. a broken chain).
    createSecureContext(secureContextOptions(material));
  } catch (cause) {
    problems.push(`tls: OpenSSL refuses tls.certFile/tls.keyFile/tls.caFile: ${(cause as Error).message}`);
    return { material: null, problems, warnings };
  }
  return { material: users.length > 0 ? material : null, problems, warnings };
}

/** Loads the material for startup; configuration problems throw GW_ERR_CONFIG_INVALID, all listed. */
export function loadTlsMaterial(config: TlsRelevantConfig): { material: TlsMaterial | null; warnings: readonly string[] } {
  const { material, problems, warnings } = readTlsMaterial(config);
  if (problems.length > 0) {
    throw new GatewayError('GW_ERR_CONFIG_INVALID', `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`, {
      details: { problems },
    });
  }
  return { material, warnings };
}

function parseCertificate(pem: Buffer): X509Certificate | null {
  // X509Certificate also takes DER, which node:tls does not: insist on PEM.
  if (!pem.includes(PEM_CERT)) return null;
  try {
    return new X509Certificate(pem);
  } catch {
    // Not a certificate: reported by the caller as such, with the file name.
    return null;
  }
}

/** Server certificate and key; the client CA only where a listener asks for client certificates. */
export function secureContextOptions(material: TlsMaterial, withClientCa = true): { cert: Buffer; key: Buffer; ca?: Buffer } {
  return { cert: material.cert, key: material.key, ...(withClientCa && material.ca !== null ? { ca: material.ca } : {}) };
}

export const TLS_LISTENERS = ['mqtts', 'wss', 'https'] as const;
export type TlsListenerName = (typeof TLS_LISTENERS)[number];

export interface TlsMetrics {
  /** A TLS handshake failed (no or untrusted client certificate, wrong protocol, scanner...). */
  handshakeFailed(listener: TlsListenerName): void;
}

export function createTlsMetrics(registry: Registry): TlsMetrics {
  const counts = new Map<TlsListenerName, number>(TLS_LISTENERS.map((l) => [l, 0]));
  new Counter({
    name: 'pulsegate_tls_handshake_failures_total',
    help: 'TLS handshakes that failed, by listener (a missing or untrusted client certificate when mqtt.clientCertificates is "required" is one)',
    labelNames: ['listener'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [listener, n] of counts) this.inc({ listener }, n);
    },
  });
  return {
    handshakeFailed(listener) {
      counts.set(listener, counts.get(listener)! + 1);
    },
  };
}

/** Logs each warning of loadTlsMaterial/readTlsMaterial (e.g. a certificate about to expire). */
export function logTlsWarnings(warnings: readonly string[], logger: Logger): void {
  for (const warning of warnings) logger.warn(warning);
}

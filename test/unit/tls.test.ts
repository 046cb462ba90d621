import { copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../gateway/config/load-config.js';
import { isGatewayError } from '../../gateway/errors.js';
import { readTlsMaterial } from '../../gateway/tls.js';
import { hasOpenssl, makeTestPki, type TestPki } from '../helpers/tls-certs.js';

if (!hasOpenssl()) throw new Error('these tests need the openssl CLI (Debian: apt install openssl)');

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});
afterAll(() => rmSync(pki.dir, { recursive: true, force: true }));

/** The problems loadConfig lists for these overrides (empty when it accepts them). */
function problems(overrides: Record<string, unknown>): string[] {
  try {
    loadConfig({ env: {}, overrides });
    return [];
  } catch (err) {
    if (!isGatewayError(err, 'GW_ERR_CONFIG_INVALID')) throw err;
    return err.details!['problems'] as string[];
  }
}

describe('TLS configuration', () => {
  it('should accept a certificate, its key and a client CA, resolving relative paths against the config file', () => {
    copyFileSync(pki.server.cert, join(pki.dir, 'rel-cert.pem'));
    const f = join(pki.dir, 'tls.yaml');
    writeFileSync(f, `mqtt:\n  tlsPort: 8883\n  clientCertificates: required\nhttp:\n  tls: true\ntls:\n  certFile: rel-cert.pem\n  keyFile: ${pki.server.key}\n  caFile: ${pki.ca.cert}\n`);
    const c = loadConfig({ file: f, env: {} });
    expect(c.tls.certFile).toBe(join(pki.dir, 'rel-cert.pem'));
    expect(c.mqtt.clientCertificates).toBe('required');
    expect(readTlsMaterial(c).material).not.toBeNull();
  });

  it('a TLS listener without a certificate or key: both listed, naming what needs them', () => {
    const p = problems({ mqtt: { tlsPort: 8883 }, http: { tls: true } });
    expect(p).toEqual(['tls.certFile: required by mqtt.tlsPort, http.tls', 'tls.keyFile: required by mqtt.tlsPort, http.tls']);
  });

  it('client certificates without a CA, or without a TLS MQTT listener: listed', () => {
    const p = problems({ mqtt: { clientCertificates: 'optional' }, tls: { certFile: pki.server.cert, keyFile: pki.server.key } });
    expect(p).toHaveLength(2);
    expect(p[0]).toMatch(/^tls\.caFile: required by mqtt\.clientCertificates "optional"/);
    expect(p[1]).toMatch(/^mqtt\.clientCertificates: "optional" needs mqtt\.tlsPort or mqtt\.wssPort/);
  });

  it('a key that does not belong to the certificate is refused at startup, not at the first handshake', () => {
    const other = pki.client('unrelated', 'unrelated');
    const p = problems({ mqtt: { tlsPort: 0 }, tls: { certFile: pki.server.cert, keyFile: other.key } });
    expect(p).toHaveLength(1);
    expect(p[0]).toContain(`tls.keyFile: ${other.key} does not match the certificate in tls.certFile ${pki.server.cert}`);
  });

  it('missing, unreadable and non-PEM files are each listed with their path, all at once', () => {
    const garbage = join(pki.dir, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate\n');
    const missing = join(pki.dir, 'missing.key');
    const p = problems({ mqtt: { tlsPort: 0, clientCertificates: 'required' }, tls: { certFile: garbage, keyFile: missing, caFile: pki.ca.key } });
    expect(p).toHaveLength(3);
    expect(p[0]).toMatch(new RegExp(`^tls\\.keyFile: cannot read ${missing}: ENOENT`));
    expect(p[1]).toBe(`tls.certFile: ${garbage} is not a PEM certificate ("-----BEGIN CERTIFICATE-----")`);
    expect(p[2]).toBe(`tls.caFile: ${pki.ca.key} is not a PEM certificate bundle ("-----BEGIN CERTIFICATE-----")`);
  });

  it('an expired server certificate is a warning, not a refusal to start', () => {
    const r = readTlsMaterial(loadConfig({ env: {}, overrides: { mqtt: { tlsPort: 0 }, tls: { certFile: pki.server.cert, keyFile: pki.server.key } } }), Date.now() + 30 * 86_400_000);
    expect(r.problems).toEqual([]);
    expect(r.warnings[0]).toMatch(/^tls\.certFile: the server certificate expired on /);
  });
});

import { copyFileSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnCli, startChildGateway } from '../helpers/child-gateway.js';
import { hasOpenssl, makeTestPki, type TestPki } from '../helpers/tls-certs.js';
import { waitFor, waitForValue } from '../helpers/wait.js';

if (!hasOpenssl()) throw new Error('these tests need the openssl CLI (Debian: apt install openssl)');

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});
afterAll(() => rmSync(pki.dir, { recursive: true, force: true }));

/** The fingerprint of the certificate a real TLS handshake with the gateway is served. */
function servedFingerprint(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca }, () => {
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fp);
    });
    socket.on('error', reject);
  });
}

describe('pulsegate CLI with TLS', () => {
  it('a TLS key that does not match its certificate: start refuses with the file named, exit 3', async () => {
    const other = pki.client('stray', 'stray');
    const { output, exited } = spawnCli(['start'], {
      PULSEGATE_MQTT_PORT: '0',
      PULSEGATE_HTTP_PORT: '0',
      PULSEGATE_DATA_DIR: join(pki.dir, 'data-refused'),
      PULSEGATE_MQTT_TLS_PORT: '0',
      PULSEGATE_TLS_CERT_FILE: pki.server.cert,
      PULSEGATE_TLS_KEY_FILE: other.key,
    });
    expect(await exited).toBe(3);
    expect(output.join('\n')).toContain(`tls.keyFile: ${other.key} does not match the certificate`);
  });

  it('renewed certificate files are served to new connections after SIGHUP, without a restart', async () => {
    const certFile = join(pki.dir, 'live.pem');
    const keyFile = join(pki.dir, 'live.key');
    copyFileSync(pki.server.cert, certFile);
    copyFileSync(pki.server.key, keyFile);
    const gw = await startChildGateway(join(pki.dir, 'data-reload'), { PULSEGATE_MQTT_TLS_PORT: '0', PULSEGATE_TLS_CERT_FILE: certFile, PULSEGATE_TLS_KEY_FILE: keyFile });
    try {
      const ready = gw.output.find((l) => l.includes('"pulsegate ready"'))!;
      const port = (JSON.parse(ready) as { mqtts: number }).mqtts;
      const ca = readFileSync(pki.ca.cert);
      const first = await servedFingerprint(port, ca);

      // A renewed server certificate: same CA and names, new key.
      const server2 = pki.serverCert('renewed');
      copyFileSync(server2.cert, certFile);
      copyFileSync(server2.key, keyFile);
      gw.child.kill('SIGHUP');
      const now = await waitForValue(() => servedFingerprint(port, ca), (fp) => fp !== first, { timeoutMs: 10_000, what: 'the renewed certificate to be served' });
      expect(now).not.toBe(first);
      // The log line reaches the pipe a little after the new certificate is in use.
      await waitFor(() => gw.output.some((l) => l.includes('TLS certificate, key and CA reloaded')), { what: 'the reload log line' });
      expect(gw.child.exitCode).toBeNull();
    } finally {
      gw.child.kill('SIGKILL');
      await gw.exited;
    }
  });
});

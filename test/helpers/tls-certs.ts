import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A throwaway PKI made with the openssl CLI: files are PEM paths. */
export interface TestPki {
  readonly dir: string;
  readonly ca: { cert: string; key: string };
  readonly server: { cert: string; key: string };
  /** Issues a client certificate with this subject CN, signed by the CA (or by `signer`). */
  client(name: string, cn: string, signer?: { cert: string; key: string }): { cert: string; key: string };
  /** Another server certificate for 127.0.0.1/localhost from the same CA (a renewal). */
  serverCert(name: string): { cert: string; key: string };
  /** Another self-signed CA, unknown to the gateway. */
  otherCa(name: string): { cert: string; key: string };
}

export function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    // Not installed: callers fail with a message saying so.
    return false;
  }
}

let serial = 1000;

/** CA + server certificate for 127.0.0.1/localhost, in a fresh temp dir. EC P-256: fast to make. */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'pg-pki-'));
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  const selfSigned = (name: string, cn: string) => {
    ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  };
  const issue = (name: string, cn: string, ext: string, signer: { cert: string; key: string }) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', signer.cert, '-CAkey', signer.key, '-set_serial', String(serial++), '-days', '2', '-out', `${name}.pem`, '-extfile', `${name}.ext`);
    return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  };
  const ca = selfSigned('ca', 'pulsegate test CA');
  const serverCert = (name: string) => issue(name, 'localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n', ca);
  const server = serverCert('server');
  return {
    dir,
    ca,
    server,
    serverCert,
    client: (name, cn, signer = ca) => issue(name, cn, 'extendedKeyUsage=clientAuth\n', signer),
    otherCa: (name) => selfSigned(name, `${name} CA`),
  };
}

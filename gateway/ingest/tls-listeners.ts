/**
 * MQTT over TLS (`mqtt.tlsPort`, mqtts, 8883 by convention) and over secure WebSocket
 * (`mqtt.wssPort`), with optional client certificates (mTLS). A verified client certificate names
 * its device by its subject CN; the MQTT login then needs no password (see certificateLogin).
 *
 * The listeners only terminate TLS: each connection stream is handed to `handle`, the one place
 * where ingest gives a stream to the broker, together with what its certificate says.
 */
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { ClientCertificateMode } from '../config/config.js';
import { secureContextOptions, type TlsMaterial, type TlsMetrics } from '../tls.js';
import { isValidDeviceId } from './topic.js';
import { closeServer, listen } from './listeners.js';

/** What a connection's client certificate says about who is on the other end. */
export type PeerIdentity =
  | { readonly kind: 'none' }
  | { readonly kind: 'device'; readonly deviceId: string }
  /** A certificate was presented but cannot name a device: the login is refused. */
  | { readonly kind: 'refused'; readonly reason: string };

const NO_PEER: PeerIdentity = { kind: 'none' };

export interface MqttTlsListenersOptions {
  readonly material: TlsMaterial;
  readonly clientCertificates: ClientCertificateMode;
  readonly host: string;
  readonly tlsPort: number | null;
  readonly wssPort: number | null;
  readonly metrics: TlsMetrics;
  readonly logger: Logger;
  readonly handle: (stream: Duplex, peer: PeerIdentity) => void;
  /** Largest WebSocket message taken (ws buffers a whole message before the packet guard sees it). */
  readonly wsMaxPayload: number;
}

export interface MqttTlsListeners {
  start(): Promise<void>;
  /** Bound ports (useful when configured as 0); null = off. */
  readonly ports: { tls: number | null; wss: number | null };
  /** New certificate/key/CA for new connections; open ones keep theirs. */
  setMaterial(material: TlsMaterial): void;
  close(): Promise<void>;
}

export function createMqttTlsListeners(options: MqttTlsListenersOptions): MqttTlsListeners {
  const { clientCertificates: mode, logger, metrics } = options;
  const serverOptions = (material: TlsMaterial) => ({
    ...secureContextOptions(material, mode !== 'off'),
    // 'required': the handshake itself fails without a certificate the CA signed.
    requestCert: mode !== 'off',
    rejectUnauthorized: mode === 'required',
  });
  const ports = { tls: null as number | null, wss: null as number | null };
  let tlsServer: TlsServer | null = null;
  let httpsForWss: HttpsServer | null = null;
  let wss: WebSocketServer | null = null;

  const onHandshakeError = (listener: 'mqtts' | 'wss') => (err: Error) => {
    metrics.handshakeFailed(listener);
    logger.debug({ listener, err: err.message }, 'TLS handshake failed');
  };

  return {
    ports,
    async start() {
      if (options.tlsPort !== null) {
        // noDelay: as on the plain listener, Nagle's algorithm would hold small PUBACKs back.
        tlsServer = createTlsServer({ ...serverOptions(options.material), noDelay: true }, (socket) => {
          options.handle(socket, mode === 'off' ? NO_PEER : peerIdentity(socket));
        });
        tlsServer.on('tlsClientError', onHandshakeError('mqtts'));
        await listen(tlsServer, options.tlsPort, options.host);
        ports.tls = (tlsServer.address() as AddressInfo).port;
      }
      if (options.wssPort !== null) {
        httpsForWss = createHttpsServer({ ...serverOptions(options.material), noDelay: true }, (_req, res) => {
          res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over secure WebSocket: connect with a WebSocket client (subprotocol mqtt)\n');
        });
        httpsForWss.on('tlsClientError', onHandshakeError('wss'));
        wss = new WebSocketServer({ server: httpsForWss, maxPayload: options.wsMaxPayload });
        wss.on('connection', (ws, req) => {
          const peer = mode === 'off' ? NO_PEER : peerIdentity(req.socket as TLSSocket);
          const stream = createWebSocketStream(ws);
          stream.on('error', () => stream.destroy());
          options.handle(stream, peer);
        });
        await listen(httpsForWss, options.wssPort, options.host);
        ports.wss = (httpsForWss.address() as AddressInfo).port;
      }
    },
    setMaterial(material) {
      tlsServer?.setSecureContext(serverOptions(material));
      httpsForWss?.setSecureContext(serverOptions(material));
    },
    async close() {
      const closed = [closeServer(tlsServer), closeServer(httpsForWss)];
      wss?.clients.forEach((c) => c.terminate());
      wss?.close();
      await Promise.all(closed);
    },
  };
}

/**
 * The device a TLS connection's client certificate names. Only a certificate the configured CA
 * verified counts; its subject CN must be a valid device id ([A-Za-z0-9_.:-], 1-128). A
 * certificate that is presented but not trusted, or whose CN is not a device id, refuses the login
 * (with 'optional', an untrusted certificate still completes the handshake).
 */
export function peerIdentity(socket: TLSSocket): PeerIdentity {
  const cert = socket.getPeerCertificate();
  // No certificate: node returns an empty object (or null once the socket is gone).
  if (cert === null || cert === undefined || Object.keys(cert).length === 0) return NO_PEER;
  if (!socket.authorized) return { kind: 'refused', reason: `client certificate not trusted: ${String(socket.authorizationError)}` };
  const cn: unknown = cert.subject?.CN;
  if (typeof cn !== 'string' || !isValidDeviceId(cn)) {
    return { kind: 'refused', reason: `client certificate subject CN ${JSON.stringify(cn ?? null)} is not a device id (1-128 of [A-Za-z0-9_.:-], exactly one CN)` };
  }
  return { kind: 'device', deviceId: cn };
}

/**
 * The MQTT login of a connection with a client certificate [MQTT-3.1.4-2 leaves authentication to
 * the server]: the certificate authenticates the device, so no password is needed; a username, if
 * given, must be the certificate's device id. Null when the connection has no certificate (the
 * password login applies).
 */
export function certificateLogin(peer: PeerIdentity | undefined, username: string | undefined): { deviceId: string } | { refused: string } | null {
  if (peer === undefined || peer.kind === 'none') return null;
  if (peer.kind === 'refused') return { refused: peer.reason };
  if (username !== undefined && username !== '' && username !== peer.deviceId) {
    return { refused: `username ${JSON.stringify(username)} is not the client certificate's device id "${peer.deviceId}"` };
  }
  return { deviceId: peer.deviceId };
}

import type { CredentialStore } from './credentials.js';
import { CLIENT_ID_SEPARATOR } from './credentials.js';

/**
 * Binds MQTT client ids, and so persistent sessions, to usernames.
 *
 * aedes keys a session (subscriptions, queued QoS 1/2 messages) by client id alone, and a second
 * CONNECT with a client id already online disconnects the first client and takes its session
 * over [MQTT-3.1.4-2]. Without a binding, any device that can log in could connect with another
 * device's client id, get its session back (sessionPresent) with its queued messages, and knock
 * it offline. The check runs inside aedes' `authenticate` hook, which aedes calls before
 * `registerClient` (where the takeover happens), so a refused CONNECT never touches the session.
 *
 * Policy "username-prefix" (default): a credentialed client's id must be its username or
 * `<username>:<suffix>`; an anonymous client's id must belong to no credentialed username.
 * Policy "any": no binding (any client may take over any session); only for closed networks.
 */
export const CLIENT_ID_POLICIES = ['username-prefix', 'any'] as const;
export type ClientIdPolicy = (typeof CLIENT_ID_POLICIES)[number];

/** Why `clientId` may not be used by this client (undefined username = anonymous), or null when it may. */
export function clientIdRefusal(policy: ClientIdPolicy, credentials: CredentialStore | null, clientId: string, username: string | undefined): string | null {
  if (policy === 'any' || credentials === null) return null;
  const owner = credentials.ownerOfClientId(clientId);
  const shown = JSON.stringify(clientId.length > 64 ? `${clientId.slice(0, 64)}...` : clientId);
  if (username === undefined) {
    return owner === undefined ? null : `client id ${shown} belongs to a credentialed device; anonymous clients may not use it`;
  }
  if (owner === username) return null;
  return `client id ${shown} is not bound to "${username}": use "${username}" or "${username}${CLIENT_ID_SEPARATOR}<suffix>"`;
}

/**
 * The same binding for a device named by its verified client certificate (which need not be in
 * the credentials file): its client id must be the device id or `<device id>:<suffix>`.
 */
export function certificateClientIdRefusal(policy: ClientIdPolicy, clientId: string, deviceId: string): string | null {
  if (policy === 'any' || clientId === deviceId || clientId.startsWith(deviceId + CLIENT_ID_SEPARATOR)) return null;
  const shown = JSON.stringify(clientId.length > 64 ? `${clientId.slice(0, 64)}...` : clientId);
  return `client id ${shown} is not bound to the certificate's device "${deviceId}": use "${deviceId}" or "${deviceId}${CLIENT_ID_SEPARATOR}<suffix>"`;
}

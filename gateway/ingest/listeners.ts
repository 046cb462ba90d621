import type { Server } from 'node:net';

/** Listens on `port` at `host`; rejects with the listen error (e.g. EADDRINUSE). */
export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** Stops accepting connections; resolves at once for a server never started (or absent). */
export function closeServer(server: Server | null): Promise<void> {
  return new Promise((resolve) => (server === null || !server.listening ? resolve() : server.close(() => resolve())));
}

/**
 * Bare aedes: the broker the gateway embeds, with nothing of the gateway around it. No
 * authentication or authorization hooks, no decoding, no log; a no-op 'publish' listener counts
 * client publishes. The gateway's figures divided by these are its overhead over its broker.
 *
 *   tsx bench/aedes-baseline.ts [--port 0]   prints {"bench":"ready","port":P,...}
 */
import { createServer, type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import { Args } from './lib/args.js';
import { announceReady, serveStats } from './lib/child.js';

const args = new Args(process.argv.slice(2));
const stats = { publishes: 0, bytes: 0, connections: 0 };

const broker = await Aedes.createBroker();
broker.on('publish', (packet, client) => {
  if (client === null) return; // $SYS and other broker-originated messages
  stats.publishes++;
  stats.bytes += packet.payload.length;
});
broker.on('client', () => stats.connections++);

const server = createServer({ noDelay: true }, broker.handle);
server.listen(args.num('port', 0), '127.0.0.1', () => {
  serveStats(() => ({ ...stats }));
  announceReady({ port: (server.address() as AddressInfo).port });
});

process.on('SIGTERM', () => {
  server.close();
  broker.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
});

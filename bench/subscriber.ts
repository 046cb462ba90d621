/**
 * Counting subscriber for brokers that have no in-process hook (Mosquitto): a raw MQTT 3.1.1
 * client subscribed to `sensors/#` at QoS 0 that counts the PUBLISH packets routed to it.
 *
 *   tsx bench/subscriber.ts --port P [--host 127.0.0.1] [--filter sensors/#]
 *   prints {"bench":"ready",...} once the SUBACK arrived
 */
import { connect } from 'node:net';
import { Args } from './lib/args.js';
import { announceReady, serveStats } from './lib/child.js';
import { connectPacket, FrameParser, PACKET, PINGREQ, subscribePacket } from './lib/wire.js';

const args = new Args(process.argv.slice(2));
const stats = { publishes: 0, bytes: 0, connections: 1 };
const socket = connect({ host: args.str('host', '127.0.0.1'), port: args.num('port', 1883), noDelay: true });
const parser = new FrameParser((type, _flags, _buf, start, end) => {
  if (type === PACKET.publish) {
    stats.publishes++;
    stats.bytes += end - start;
  } else if (type === PACKET.connack) socket.write(subscribePacket(1, args.str('filter', 'sensors/#'), 0));
  else if (type === PACKET.suback) {
    serveStats(() => ({ ...stats }));
    announceReady({});
  }
});
socket.on('connect', () => socket.write(connectPacket(`bench-sub-${process.pid}`, 60)));
socket.on('data', (chunk: Buffer) => parser.push(chunk));
socket.on('error', (err) => {
  process.stderr.write(`subscriber: ${err.message}\n`);
  process.exit(1);
});
socket.on('close', () => process.exit(0));
setInterval(() => socket.write(PINGREQ), 30_000).unref();

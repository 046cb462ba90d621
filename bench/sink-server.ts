/**
 * The publisher's ceiling: a TCP server that answers MQTT as little as a client needs (CONNACK,
 * PUBACK for QoS 1, SUBACK, PINGRESP) and discards everything else. It only frames packets to
 * count them and to find QoS 1 packet ids; payloads are never looked at. Whatever rate the
 * publisher reaches against it is the most the publisher can offer any system under test.
 *
 *   tsx bench/sink-server.ts [--port 0]      prints {"bench":"ready","port":P,...}
 */
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Args } from './lib/args.js';
import { announceReady, serveStats } from './lib/child.js';
import { CONNACK_OK, FrameParser, PACKET, PINGRESP, publishPacketId, subackPacket, writePuback } from './lib/wire.js';

const args = new Args(process.argv.slice(2));
const stats = { publishes: 0, bytes: 0, connections: 0 };

const server = createServer({ noDelay: true }, (socket) => {
  stats.connections++;
  let acks: Buffer | null = null;
  let ackOff = 0;
  const parser = new FrameParser((type, flags, buf, start) => {
    if (type === PACKET.publish) {
      stats.publishes++;
      if ((flags & 0x06) !== 0) {
        if (acks === null || ackOff + 4 > acks.length) {
          if (acks !== null) socket.write(acks.subarray(0, ackOff));
          acks = Buffer.allocUnsafe(16 * 1024);
          ackOff = 0;
        }
        ackOff = writePuback(acks, ackOff, publishPacketId(buf, start));
      }
    } else if (type === PACKET.connect) socket.write(CONNACK_OK);
    else if (type === PACKET.subscribe) socket.write(subackPacket((buf[start]! << 8) | buf[start + 1]!, 0));
    else if (type === PACKET.pingreq) socket.write(PINGRESP);
    else if (type === PACKET.disconnect) socket.end();
  });
  socket.on('data', (chunk: Buffer) => {
    stats.bytes += chunk.length;
    parser.push(chunk);
    // One write per read for every PUBACK the read produced.
    if (acks !== null && ackOff > 0) {
      socket.write(acks.subarray(0, ackOff));
      acks = null;
      ackOff = 0;
    }
  });
  socket.on('error', () => socket.destroy());
});

server.listen(args.num('port', 0), '127.0.0.1', () => {
  serveStats(() => ({ ...stats }));
  announceReady({ port: (server.address() as AddressInfo).port });
});

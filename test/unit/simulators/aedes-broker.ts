import { createServer, type AddressInfo, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Aedes, type AedesOptions } from 'aedes';
import protobuf from 'protobufjs';

/** An in-process aedes broker on a free port that records every client publish it accepted. */
export interface TestBroker {
  readonly url: string;
  readonly received: { topic: string; payload: Buffer; qos: number; clientId: string }[];
  readonly clientIds: Set<string>;
  close(): Promise<void>;
}

export async function startTestBroker(options: AedesOptions = {}): Promise<TestBroker> {
  const broker = await Aedes.createBroker(options);
  const received: TestBroker['received'] = [];
  const clientIds = new Set<string>();
  broker.on('client', (c) => clientIds.add(c.id));
  broker.on('publish', (packet, client) => {
    if (client) received.push({ topic: packet.topic, payload: Buffer.from(packet.payload as Buffer), qos: packet.qos, clientId: client.id });
  });
  const server: Server = createServer({ noDelay: true }, broker.handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    received,
    clientIds,
    async close() {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const root = protobuf.loadSync(fileURLToPath(new URL('../../../proto/pulsegate.proto', import.meta.url)));
const TYPES = {
  'heart-rate': { one: root.lookupType('pulsegate.v1.HeartRateReading'), batch: root.lookupType('pulsegate.v1.HeartRateBatch'), field: 'readings' },
  bridge: { one: root.lookupType('pulsegate.v1.VehicleDetection'), batch: root.lookupType('pulsegate.v1.VehicleBatch'), field: 'detections' },
} as const;

export interface DecodedReading {
  kind: string;
  deviceId: string;
  seq: number;
  ts: number;
  [field: string]: unknown;
}

/** Decodes a sensor publish (protobuf single/batch by the framing rule, or JSON). */
export function decodePublish(topic: string, payload: Buffer): DecodedReading[] {
  const [, kind, deviceId] = topic.split('/') as [string, 'heart-rate' | 'bridge', string];
  const t = TYPES[kind];
  let items: Record<string, unknown>[];
  if (payload[0] === 0x7b || payload[0] === 0x5b) {
    const parsed = JSON.parse(payload.toString()) as Record<string, unknown> | Record<string, unknown>[];
    items = Array.isArray(parsed) ? parsed : [parsed];
  } else if (payload[0] === 0x0a) {
    items = (t.batch.toObject(t.batch.decode(payload), { longs: Number, enums: String, defaults: true }) as Record<string, Record<string, unknown>[]>)[t.field]!;
  } else {
    items = [t.one.toObject(t.one.decode(payload), { longs: Number, enums: String, defaults: true })];
  }
  return items.map((i) => ({ ...i, kind, deviceId, seq: i['seq'] as number, ts: i['ts'] as number }));
}

/** Unique readings by (device, seq), as the gateway would keep them. */
export function uniqueReadings(received: TestBroker['received']): Map<string, DecodedReading> {
  const out = new Map<string, DecodedReading>();
  for (const p of received) for (const r of decodePublish(p.topic, p.payload)) if (!out.has(`${r.deviceId}/${r.seq}`)) out.set(`${r.deviceId}/${r.seq}`, r);
  return out;
}

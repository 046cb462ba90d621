/**
 * Checks the hand-written encoders against protobufjs and mqtt-packet before any figure is taken,
 * so that a fast publisher can never be fast because it sends something else.
 */
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import mqttPacket from 'mqtt-packet';
import { encodeVehicleDetection, heartRateBatchLen, heartRateLen, publishPacket, writeHeartRate, writeHeartRateBatch } from './wire.js';

const PROTO = fileURLToPath(new URL('../../proto/pulsegate.proto', import.meta.url));

export function selfCheck(): void {
  const root = protobuf.loadSync(PROTO);
  const reading = root.lookupType('pulsegate.v1.HeartRateReading');
  const batch = root.lookupType('pulsegate.v1.HeartRateBatch');
  const vehicle = root.lookupType('pulsegate.v1.VehicleDetection');
  const ts = 1_763_800_000_123;
  const bpms = new Uint8Array(8).map((_, i) => 60 + i * 17);

  for (const seq of [1, 127, 128, 16_383, 16_384, 2 ** 31 + 5, 2 ** 40 + 3]) {
    const bpm = bpms[seq & 7]!;
    const buf = Buffer.alloc(heartRateLen(seq, ts, bpm));
    const end = writeHeartRate(buf, 0, seq, ts, bpm);
    if (end !== buf.length) throw new Error(`selfcheck: heartRateLen(${seq}) = ${buf.length}, wrote ${end}`);
    const ref = Buffer.from(reading.encode({ seq, ts, bpm }).finish());
    if (!ref.equals(buf)) throw new Error(`selfcheck: HeartRateReading seq=${seq}: ${buf.toString('hex')} != ${ref.toString('hex')}`);
  }
  const first = 126;
  const n = 5;
  const b = Buffer.alloc(heartRateBatchLen(first, n, ts, bpms));
  if (writeHeartRateBatch(b, 0, first, n, ts, bpms) !== b.length) throw new Error('selfcheck: heartRateBatchLen mismatch');
  const refBatch = Buffer.from(
    batch.encode({ readings: Array.from({ length: n }, (_, i) => ({ seq: first + i, ts, bpm: bpms[(first + i) & 7]! })) }).finish(),
  );
  if (!refBatch.equals(b) || b[0] !== 0x0a) throw new Error(`selfcheck: HeartRateBatch: ${b.toString('hex')} != ${refBatch.toString('hex')}`);

  const v = encodeVehicleDetection(9, ts, 1, 1, 80, 2);
  const refV = Buffer.from(vehicle.encode({ seq: 9, ts, lane: 1, vehicleClass: 1, speedKmh: 80, axles: 2 }).finish());
  if (!refV.equals(v)) throw new Error(`selfcheck: VehicleDetection: ${v.toString('hex')} != ${refV.toString('hex')}`);

  for (const qos of [0, 1] as const) {
    const packet = publishPacket('sensors/heart-rate/x', b, qos, 77);
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    let got: mqttPacket.IPublishPacket | null = null;
    parser.on('packet', (p) => {
      if (p.cmd === 'publish') got = p;
    });
    parser.parse(packet);
    const p = got as mqttPacket.IPublishPacket | null;
    if (p === null || p.topic !== 'sensors/heart-rate/x' || p.qos !== qos || !Buffer.from(p.payload).equals(b) || (qos === 1 && p.messageId !== 77)) {
      throw new Error(`selfcheck: PUBLISH qos ${qos} does not parse back`);
    }
  }
}

import mqtt from 'mqtt';

/**
 * Heart-rate readings that make the built-in rule `heart-rate-spike` (bpm_max of the 10 s window
 * above 200, cleared below 190) fire once and resolve once: one reading a second from `start`
 * (aligned to 10 s), 80 bpm, then 210 bpm for windows `spikeFrom`..`spikeTo - 1`, then 80 bpm again,
 * and one reading past the last window so that it is emitted. Nothing else of the built-in rules
 * (flatline, sustained high for 30 s, loss) is met.
 *
 *   FIRING   firedAt = end of window spikeFrom          (episode start = its start)
 *   RESOLVED resolvedAt = end of window spikeTo         (the first window back at 80)
 */
export interface SpikeSeries {
  readonly readings: ReadonlyArray<{ seq: number; ts: number; bpm: number }>;
  readonly episodeStart: number;
  readonly firedAt: number;
  readonly resolvedAt: number;
}

export function spikeSeries(start: number, options: { windows?: number; spikeFrom?: number; spikeTo?: number; firstSeq?: number } = {}): SpikeSeries {
  const windows = options.windows ?? 8;
  const spikeFrom = options.spikeFrom ?? 3;
  const spikeTo = options.spikeTo ?? 5;
  const t0 = Math.floor(start / 10_000) * 10_000;
  const readings: Array<{ seq: number; ts: number; bpm: number }> = [];
  let seq = options.firstSeq ?? 1;
  for (let w = 0; w < windows; w++) {
    for (let s = 0; s < 10; s++) readings.push({ seq: seq++, ts: t0 + w * 10_000 + s * 1000 + 100, bpm: w >= spikeFrom && w < spikeTo ? 210 : 80 });
  }
  // Closes the last window (its end passes the device's watermark).
  readings.push({ seq: seq++, ts: t0 + windows * 10_000 + 100, bpm: 80 });
  return { readings, episodeStart: t0 + spikeFrom * 10_000, firedAt: t0 + (spikeFrom + 1) * 10_000, resolvedAt: t0 + (spikeTo + 1) * 10_000 };
}

/** Publishes the readings as JSON batches of `batch`, QoS 1 (each acknowledged: durable in the log). */
export async function publishHeartRate(mqttPort: number, deviceId: string, readings: SpikeSeries['readings'], batch = 10): Promise<void> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { protocolVersion: 4, reconnectPeriod: 0, clientId: `${deviceId}-pub` });
  try {
    for (let i = 0; i < readings.length; i += batch) {
      await client.publishAsync(`sensors/heart-rate/${deviceId}`, JSON.stringify(readings.slice(i, i + batch)), { qos: 1 });
    }
  } finally {
    await client.endAsync();
  }
}

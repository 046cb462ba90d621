import mqtt from 'mqtt';

/**
 * Readings that make the built-in alert rules fire and resolve where the test wants them, to be
 * published over MQTT to a real gateway.
 *
 * Heart rate: one reading a second, `bpm` per 10 s window; `heart-rate-spike` (bpm_max of the 10 s
 * window above 200, cleared below 190) fires on the first window at 210 (firedAt = its end) and
 * resolves on the first one back at 80 (resolvedAt = its end). A last reading past the final window
 * has that window emitted. Bridge: `trucks` per minute in lane 1; `bridge-truck-surge` (more than
 * 25 a minute, cleared below 15) likewise. None of the other built-in rules is met (no flatline,
 * no 30 s of mean above 180, no sequence gaps); `device-silent` fires 30 s (gateway time) after
 * the last reading.
 */
export interface Series {
  readonly kind: 'heart-rate' | 'bridge';
  readonly readings: ReadonlyArray<Record<string, number | string>>;
}

export interface SpikeSeries extends Series {
  readonly episodeStart: number;
  readonly firedAt: number;
  readonly resolvedAt: number;
}

export function heartRateSeries(start: number, bpmPerWindow: readonly number[], firstSeq = 1): Series {
  const t0 = Math.floor(start / 10_000) * 10_000;
  const readings: Array<Record<string, number>> = [];
  let seq = firstSeq;
  bpmPerWindow.forEach((bpm, w) => {
    for (let s = 0; s < 10; s++) readings.push({ seq: seq++, ts: t0 + w * 10_000 + s * 1000 + 100, bpm });
  });
  // At the last window's rate: the gateway's shutdown hands this half-filled window back as it is,
  // and the rules judge it like any other.
  readings.push({ seq: seq++, ts: t0 + bpmPerWindow.length * 10_000 + 100, bpm: bpmPerWindow[bpmPerWindow.length - 1] ?? 80 });
  return { kind: 'heart-rate', readings };
}

export function bridgeSeries(start: number, trucksPerMinute: readonly number[], firstSeq = 1): Series {
  const t0 = Math.floor(start / 60_000) * 60_000;
  const readings: Array<Record<string, number | string>> = [];
  let seq = firstSeq;
  trucksPerMinute.forEach((trucks, m) => {
    for (let i = 0; i < trucks; i++) readings.push({ seq: seq++, ts: t0 + m * 60_000 + Math.floor((i * 60_000) / trucks) + 50, lane: 1, vehicleClass: 'TRUCK', speedKmh: 72.5, axles: 5 });
  });
  readings.push({ seq: seq++, ts: t0 + trucksPerMinute.length * 60_000 + 50, lane: 2, vehicleClass: 'CAR', speedKmh: 91, axles: 2 });
  return { kind: 'bridge', readings };
}

/** 80 bpm for windows 0-2, 210 for 3-4, 80 for 5-7: one episode of heart-rate-spike, fired and resolved. */
export function spikeSeries(start: number): SpikeSeries {
  const t0 = Math.floor(start / 10_000) * 10_000;
  return { ...heartRateSeries(t0, [80, 80, 80, 210, 210, 80, 80, 80]), episodeStart: t0 + 30_000, firedAt: t0 + 40_000, resolvedAt: t0 + 60_000 };
}

/** Publishes the readings as JSON batches of `batch`, QoS 1 (each acknowledged: durable in the log). */
export async function publishSeries(mqttPort: number, deviceId: string, series: Series, batch = 10): Promise<void> {
  const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${mqttPort}`, { protocolVersion: 4, reconnectPeriod: 0, clientId: `${deviceId}-pub` });
  try {
    for (let i = 0; i < series.readings.length; i += batch) {
      await client.publishAsync(`sensors/${series.kind}/${deviceId}`, JSON.stringify(series.readings.slice(i, i + batch)), { qos: 1 });
    }
  } finally {
    await client.endAsync();
  }
}

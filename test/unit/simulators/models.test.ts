import { describe, expect, it } from 'vitest';
import { BridgeModel, CLASS_MIX, trafficFactor } from '../../../simulators/models/bridge-model.js';
import { HeartRateModel, HEART_RATE_NORMAL_RANGE } from '../../../simulators/models/heart-rate-model.js';
import type { HeartRateReading, VehicleDetection } from '../../../simulators/readings.js';

const START = Date.UTC(2025, 10, 22, 0, 0, 0);

function heartRate(seed: number, deviceIndex: number, n: number, anomalyProbability?: number): { readings: HeartRateReading[]; model: HeartRateModel; anomalous: boolean[] } {
  const model = new HeartRateModel({ seed, deviceIndex, startTs: START, ...(anomalyProbability === undefined ? {} : { anomalyProbability }) });
  const readings: HeartRateReading[] = [];
  const anomalous: boolean[] = [];
  for (let i = 0; i < n; i++) {
    readings.push(model.next());
    anomalous.push(model.anomaly !== null);
  }
  return { readings, model, anomalous };
}

function vehicles(seed: number, untilTs: number, options: Partial<ConstructorParameters<typeof BridgeModel>[0]> = {}): VehicleDetection[] {
  const model = new BridgeModel({ seed, deviceIndex: 0, startTs: START, ...options });
  const out: VehicleDetection[] = [];
  for (let r = model.next(); r.ts < untilTs; r = model.next()) out.push(r);
  return out;
}

describe('heart-rate model', () => {
  it('heart-rate model should produce identical readings for the same seed', () => {
    expect(heartRate(42, 3, 5000).readings).toEqual(heartRate(42, 3, 5000).readings);
  });

  it('heart-rate model should produce different readings for a different seed or athlete', () => {
    const a = heartRate(42, 0, 2000).readings.map((r) => r.bpm);
    expect(heartRate(43, 0, 2000).readings.map((r) => r.bpm)).not.toEqual(a);
    expect(heartRate(42, 1, 2000).readings.map((r) => r.bpm)).not.toEqual(a);
  });

  it('heart-rate model should number readings from 1 and space them at the configured rate', () => {
    const { readings } = heartRate(1, 0, 100);
    expect(readings.map((r) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(readings.map((r) => r.ts - START)).toEqual(Array.from({ length: 100 }, (_, i) => i * 200));
    const fast = new HeartRateModel({ seed: 1, deviceIndex: 0, startTs: START, rateHz: 20 });
    fast.next();
    expect(fast.next().ts - START).toBe(50);
  });

  it('heart-rate model should stay within plausible ranges with rest, effort and recovery', () => {
    for (let athlete = 0; athlete < 5; athlete++) {
      // Two hours at 5 Hz, no anomalies.
      const { readings, model } = heartRate(7, athlete, 36_000, 0);
      expect(model.anomalyEpisodes).toBe(0);
      const bpms = readings.map((r) => r.bpm);
      // RR interval consistent with the heart rate (within 8%).
      const bad = readings.filter(
        (r) =>
          !Number.isInteger(r.bpm) ||
          r.bpm < HEART_RATE_NORMAL_RANGE.min ||
          r.bpm > HEART_RATE_NORMAL_RANGE.max ||
          r.rrMs === undefined ||
          Math.abs(r.rrMs - 60_000 / r.bpm) / (60_000 / r.bpm) >= 0.08,
      );
      expect(bad).toEqual([]);
      // The first seconds are at rest (~60 bpm); effort reaches 140+; the minimum returns to rest.
      const firstSecond = bpms.slice(0, 5).reduce((a, b) => a + b, 0) / 5;
      expect(firstSecond).toBeGreaterThan(45);
      expect(firstSecond).toBeLessThan(75);
      expect(Math.max(...bpms)).toBeGreaterThanOrEqual(140);
      expect(Math.max(...bpms)).toBeLessThanOrEqual(195);
      expect(Math.min(...bpms.slice(18_000))).toBeLessThan(80);
      // No jumps of physiological implausibility between consecutive samples (200 ms).
      let maxStep = 0;
      for (let i = 1; i < bpms.length; i++) maxStep = Math.max(maxStep, Math.abs(bpms[i]! - bpms[i - 1]!));
      expect(maxStep).toBeLessThan(15);
    }
  });

  it('heart-rate model should produce anomalies at the configured rate', () => {
    const p = 0.002;
    let episodes = 0;
    let opportunities = 0;
    let spikes = 0;
    let flatlines = 0;
    const wrong: HeartRateReading[] = [];
    for (let athlete = 0; athlete < 10; athlete++) {
      const { readings, model, anomalous } = heartRate(11, athlete, 20_000, p);
      episodes += model.anomalyEpisodes;
      let prevAnomalous = false;
      readings.forEach((r, i) => {
        if (!prevAnomalous) opportunities++;
        const a = anomalous[i]!;
        if (a && !prevAnomalous) {
          if (r.bpm === 0) flatlines++;
          else spikes++;
        }
        const ok = a
          ? (r.bpm === 0 && r.rrMs === undefined) || (r.bpm > 200 && r.rrMs !== undefined && r.rrMs < 320)
          : r.bpm > 0 && r.bpm <= 200;
        if (!ok) wrong.push(r);
        prevAnomalous = a;
      });
    }
    expect(wrong).toEqual([]);
    const expected = p * opportunities;
    expect(episodes).toBeGreaterThan(expected * 0.8);
    expect(episodes).toBeLessThan(expected * 1.2);
    expect(spikes + flatlines).toBeGreaterThan(episodes * 0.9);
    expect(spikes / (spikes + flatlines)).toBeGreaterThan(0.35);
    expect(spikes / (spikes + flatlines)).toBeLessThan(0.65);
    // A flatline lasts a few seconds (2-5 s = 10-25 readings at 5 Hz).
    const { readings } = heartRate(11, 0, 20_000, p);
    const runs: number[] = [];
    let run = 0;
    for (const r of readings) {
      if (r.bpm === 0) run++;
      else if (run > 0) {
        runs.push(run);
        run = 0;
      }
    }
    expect(runs.length).toBeGreaterThan(0);
    for (const len of runs) {
      expect(len).toBeGreaterThanOrEqual(9);
      expect(len).toBeLessThanOrEqual(26);
    }
  });

  it('heart-rate model should produce no anomalies with probability 0', () => {
    const { readings } = heartRate(5, 0, 50_000, 0);
    expect(readings.every((r) => r.bpm > 0 && r.bpm <= 200)).toBe(true);
  });
});

describe('bridge model', () => {
  it('bridge model should produce identical detections for the same seed and different ones for another', () => {
    const a = vehicles(9, START + 3_600_000);
    expect(vehicles(9, START + 3_600_000)).toEqual(a);
    expect(vehicles(10, START + 3_600_000)).not.toEqual(a);
  });

  it('bridge model should have roughly Poisson arrivals at a constant rate', () => {
    const rate = 0.5;
    const hours = 6;
    const v = vehicles(3, START + hours * 3_600_000, { ratePerSecond: rate, rushHour: false });
    expect(v.length).toBeGreaterThan(rate * hours * 3600 * 0.95);
    expect(v.length).toBeLessThan(rate * hours * 3600 * 1.05);
    // Counts per minute: mean 30, variance ~ mean (index of dispersion ~1).
    const perMinute = new Array<number>(hours * 60).fill(0);
    for (const d of v) perMinute[Math.floor((d.ts - START) / 60_000)]!++;
    const mean = perMinute.reduce((a, b) => a + b, 0) / perMinute.length;
    const variance = perMinute.reduce((a, b) => a + (b - mean) ** 2, 0) / (perMinute.length - 1);
    expect(mean).toBeGreaterThan(28);
    expect(mean).toBeLessThan(32);
    expect(variance / mean).toBeGreaterThan(0.75);
    expect(variance / mean).toBeLessThan(1.3);
    // Exponential inter-arrival times: coefficient of variation ~1.
    const gaps = v.slice(1).map((d, i) => d.ts - v[i]!.ts);
    const gm = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    const gsd = Math.sqrt(gaps.reduce((a, b) => a + (b - gm) ** 2, 0) / gaps.length);
    expect(gm).toBeGreaterThan(1800);
    expect(gm).toBeLessThan(2200);
    expect(gsd / gm).toBeGreaterThan(0.9);
    expect(gsd / gm).toBeLessThan(1.1);
    expect(v.every((d, i) => i === 0 || d.ts >= v[i - 1]!.ts)).toBe(true);
    expect(v.map((d) => d.seq)).toEqual(v.map((_, i) => i + 1));
  });

  it('bridge model should follow the rush-hour profile of the event time', () => {
    const rate = 0.2;
    const days = 3;
    const v = vehicles(4, START + days * 86_400_000, { ratePerSecond: rate });
    const perHour = new Array<number>(24).fill(0);
    for (const d of v) perHour[new Date(d.ts).getUTCHours()]!++;
    for (let h = 0; h < 24; h++) {
      // Expected: integral of the rate over the hour, approximated at 1-minute steps.
      let expected = 0;
      for (let m = 0; m < 60; m++) expected += rate * 60 * trafficFactor(START + h * 3_600_000 + m * 60_000 + 30_000) * days;
      const tolerance = 4 * Math.sqrt(expected) + 0.05 * expected;
      expect(Math.abs(perHour[h]! - expected)).toBeLessThan(tolerance);
    }
    expect(perHour[8]!).toBeGreaterThan(perHour[3]! * 8);
    expect(perHour[17]!).toBeGreaterThan(perHour[12]! * 1.6);
    // The profile is in local time: with an offset of +120 min the morning peak is at 06:00 UTC.
    expect(trafficFactor(Date.UTC(2025, 0, 1, 6, 30), 120)).toBeCloseTo(trafficFactor(Date.UTC(2025, 0, 1, 8, 30)), 10);
  });

  it('bridge model should keep the class mix, lanes, speeds, axles and weights plausible', () => {
    const v = vehicles(5, START + 86_400_000, { ratePerSecond: 0.5, rushHour: false, lanes: 3, weightProbability: 0.4 });
    const n = v.length;
    expect(n).toBeGreaterThan(40_000);
    const counts = new Map<string, number>();
    for (const d of v) counts.set(d.vehicleClass, (counts.get(d.vehicleClass) ?? 0) + 1);
    for (const [cls, share] of CLASS_MIX) {
      const observed = (counts.get(cls) ?? 0) / n;
      expect(Math.abs(observed - share)).toBeLessThan(Math.max(0.004, share * 0.1));
    }
    const weighed = v.filter((d) => d.weightKg !== undefined).length / n;
    expect(Math.abs(weighed - 0.4)).toBeLessThan(0.02);
    const bad = v.filter(
      (d) =>
        ![1, 2, 3].includes(d.lane) ||
        !(d.speedKmh >= 5 && d.speedKmh <= 180) ||
        !(Number.isInteger(d.axles) && d.axles >= 2 && d.axles <= 6) ||
        ((d.vehicleClass === 'CAR' || d.vehicleClass === 'MOTORCYCLE') && d.axles !== 2) ||
        (d.weightKg !== undefined && !(d.weightKg > 0 && d.weightKg <= 60_000)),
    );
    expect(bad).toEqual([]);
    const mean = (cls: string, f: (d: VehicleDetection) => number): number => {
      const xs = v.filter((d) => d.vehicleClass === cls).map(f);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    expect(mean('TRUCK', (d) => d.weightKg ?? Number.NaN)).toBeNaN();
    const truckWeight = v.filter((d) => d.vehicleClass === 'TRUCK' && d.weightKg !== undefined).map((d) => d.weightKg!);
    const carWeight = v.filter((d) => d.vehicleClass === 'CAR' && d.weightKg !== undefined).map((d) => d.weightKg!);
    expect(truckWeight.reduce((a, b) => a + b, 0) / truckWeight.length).toBeGreaterThan(5 * (carWeight.reduce((a, b) => a + b, 0) / carWeight.length));
    expect(mean('CAR', (d) => d.speedKmh)).toBeGreaterThan(mean('TRUCK', (d) => d.speedKmh));
    // Heavy vehicles keep to lane 1.
    const trucks = v.filter((d) => d.vehicleClass === 'TRUCK');
    expect(trucks.filter((d) => d.lane === 1).length / trucks.length).toBeGreaterThan(0.6);
  });

  it('bridge model should slow traffic down at rush hour', () => {
    const day = vehicles(6, START + 86_400_000, { ratePerSecond: 0.3 });
    const avg = (h: number): number => {
      const xs = day.filter((d) => new Date(d.ts).getUTCHours() === h && d.vehicleClass === 'CAR').map((d) => d.speedKmh);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    expect(avg(17)).toBeLessThan(avg(11) * 0.85);
  });

  it('bridge model should make truck surges of more than 25 trucks a minute in one lane, recorded, and leave the other traffic as it was', () => {
    const until = START + 3 * 3_600_000;
    const plain = vehicles(21, until, { ratePerSecond: 1, rushHour: false });
    const model = new BridgeModel({ seed: 21, deviceIndex: 0, startTs: START, ratePerSecond: 1, rushHour: false, truckSurges: true, truckSurgeEveryS: 900 });
    const surged: VehicleDetection[] = [];
    for (let r = model.next(); r.ts < until; r = model.next()) surged.push(r);
    const surges = model.episodes.filter((e) => e.endTs < until);
    expect(surges.length).toBeGreaterThanOrEqual(4);
    expect(surges.length).toBeLessThanOrEqual(24);
    // Sequence numbers stay dense and times ordered with the extra trucks merged in.
    expect(surged.every((d, i) => d.seq === i + 1 && (i === 0 || d.ts >= surged[i - 1]!.ts))).toBe(true);
    // Every regular detection is still there, the same (but its seq); the rest are the surges' trucks.
    const key = (d: VehicleDetection) => JSON.stringify({ ...d, seq: 0 });
    const present = new Set(surged.map(key));
    expect(plain.filter((d) => !present.has(key(d)))).toEqual([]);
    expect(surged.length - plain.length).toBe(model.episodes.reduce((n, e) => n + e.readings, 0));
    for (const e of surges) {
      expect(e.endTs - e.startTs).toBeGreaterThan(100_000);
      expect(e.endTs - e.startTs).toBeLessThanOrEqual(240_000);
      // Some whole minute of the surge has more than 25 trucks in its lane (the default rule's level).
      const firstMinute = Math.ceil(e.startTs / 60_000) * 60_000;
      const trucks = surged.filter((d) => d.vehicleClass === 'TRUCK' && d.lane === e.lane && d.ts >= firstMinute && d.ts < firstMinute + 60_000).length;
      expect(trucks).toBeGreaterThan(25);
    }
    // Outside surges no minute of a lane reaches the clear level of the rule (15).
    const perMinuteLane = new Map<string, number>();
    for (const d of plain) if (d.vehicleClass === 'TRUCK') perMinuteLane.set(`${Math.floor(d.ts / 60_000)}:${d.lane}`, (perMinuteLane.get(`${Math.floor(d.ts / 60_000)}:${d.lane}`) ?? 0) + 1);
    expect(Math.max(...perMinuteLane.values())).toBeLessThan(15);
  });

  it('bridge model should make the same surges for the same seed', () => {
    const make = () => {
      const m = new BridgeModel({ seed: 3, deviceIndex: 1, startTs: START, truckSurges: true, truckSurgeEveryS: 600 });
      for (let i = 0; i < 20_000; i++) m.next();
      return m.episodes;
    };
    expect(make()).toEqual(make());
    expect(make().length).toBeGreaterThan(0);
  });
});

describe('anomaly episodes of the heart-rate model', () => {
  it('heart-rate model should record each anomaly with the event time of its first and last reading', () => {
    const { readings, model } = heartRate(11, 0, 20_000, 0.002);
    expect(model.episodes.length).toBe(model.anomalyEpisodes);
    for (const e of model.episodes) {
      const inside = readings.filter((r) => r.ts >= e.startTs && r.ts <= e.endTs);
      expect(inside.length).toBe(e.readings);
      expect(inside.every((r) => (e.kind === 'flatline' ? r.bpm === 0 : r.bpm > 200))).toBe(true);
    }
    // And every anomalous reading is inside one.
    const abnormal = readings.filter((r) => r.bpm === 0 || r.bpm > 200);
    expect(abnormal.length).toBe(model.episodes.reduce((n, e) => n + e.readings, 0));
  });
});

import { randomBytes } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { resolveOptions, type ResolvedOptions, type SimulatorOptions, type SimulatorProgress } from './options.js';
import { PublishPlanner, type PublishItem } from './plan.js';
import { Publisher, type ConnectionSpec } from './publisher.js';
import { SummaryBuilder, writeSummaryFile, type Summary } from './summary.js';

/**
 * Runs a simulator in-process: connects, publishes the planned readings (paced by wall clock,
 * by a total rate, or as fast as the in-flight windows allow), waits for the outstanding
 * acknowledgements and returns (and optionally writes) the summary of what was acknowledged.
 * Stopping through `signal` is a normal end: the promise resolves with `stopped: "aborted"`.
 * Rejects with SimulatorOptionError for bad options and PublishError when it cannot connect.
 */
export async function runSimulator(input: SimulatorOptions): Promise<Summary> {
  const options = resolveOptions(input);
  const signal = input.signal;
  const warn = input.onWarning ?? (() => undefined);
  const planner = new PublishPlanner(options);
  const summary = new SummaryBuilder({
    kind: options.kind,
    qos: options.qos,
    format: options.format,
    batch: options.batch,
    seed: options.seed,
    startTs: options.startTs,
    realtime: options.realtime,
  });
  for (const d of planner.devices) summary.addDevice(d.id);

  // Pre-encoding (benchmarks): generate and encode ahead, so the timed loop only publishes.
  const queue: (PublishItem | undefined)[] = [];
  let head = 0;
  while (!planner.done && planner.generated < options.preEncode && !signal?.aborted) planner.step(queue);
  const preEncoded = queue.length > 0;

  if (signal?.aborted) return finish(summary, options, 'aborted');
  const publisher = await Publisher.connect({
    url: options.url,
    qos: options.qos,
    connections: connectionSpecs(options, planner.devices.map((d) => d.id)),
    inflight: options.inflight,
    connectTimeoutMs: options.connectTimeoutMs,
    onError: (err, i) => warn(`connection ${i}: ${err.message}`),
  });

  let failuresReported = 0;
  const send = (item: PublishItem): void => {
    const n = item.readings.length;
    summary.noteSent(n);
    publisher.publish(item.device.connection, item.device.topic, item.payload, (err) => {
      if (err === undefined) {
        summary.recordAcked(item.device.id, item.readings);
        return;
      }
      summary.noteFailed(n);
      if (failuresReported++ < 5) warn(`publish to ${item.device.topic} failed: ${err.message}`);
    });
  };

  const t0 = performance.now();
  let lastReport = { at: t0, acked: 0 };
  const progress = (done: boolean): void => {
    if (input.onProgress === undefined) return;
    const now = performance.now();
    const t = summary.totals;
    const dt = (now - lastReport.at) / 1000;
    const p: SimulatorProgress = {
      elapsedMs: Math.round(now - t0),
      readingsSent: t.readingsSent,
      readingsAcked: t.readings,
      readingsFailed: t.readingsFailed,
      publishesSent: t.publishesSent,
      publishesAcked: t.publishes,
      inFlight: publisher.inFlight,
      // The final report gives the average over the run, the others the rate since the last one.
      ratePerSecond: done ? summary.readingsPerSecond : dt > 0 ? Math.round((t.readings - lastReport.acked) / dt) : 0,
      done,
    };
    lastReport = { at: now, acked: t.readings };
    input.onProgress(p);
  };
  const progressTimer = input.onProgress === undefined ? null : setInterval(() => progress(false), options.progressIntervalMs);
  progressTimer?.unref();

  const aborted = abortPromise(signal);
  const burst = options.totalRate === null ? 0 : Math.max(options.batch, options.totalRate * 0.01);
  let released = 0;
  let sinceYield = 0;
  try {
    for (;;) {
      if (signal?.aborted) break;
      if (head >= queue.length) {
        queue.length = 0;
        head = 0;
        if (planner.done) break;
        planner.step(queue);
        continue;
      }
      const item = queue[head]!;
      if (options.realtime) {
        const wait = t0 + (item.dueTs - options.startTs) - performance.now();
        if (wait > 0.5) {
          await Promise.race([sleep(Math.min(wait, 250)), aborted.promise]);
          continue;
        }
      }
      if (options.totalRate !== null) {
        const allowed = ((performance.now() - t0) / 1000) * options.totalRate + burst;
        const excess = released + item.readings.length - allowed;
        if (excess > 0) {
          await Promise.race([sleep(Math.max(1, (excess / options.totalRate) * 1000)), aborted.promise]);
          continue;
        }
      }
      if (!publisher.hasCapacity(item.device.connection)) {
        await Promise.race([publisher.waitForCapacity(item.device.connection), aborted.promise]);
        continue;
      }
      queue[head++] = undefined;
      released += item.readings.length;
      send(item);
      if (++sinceYield >= 256) {
        sinceYield = 0;
        await yieldToLoop();
      }
    }

    const stopped = signal?.aborted === true ? 'aborted' : 'completed';
    if (stopped === 'aborted') {
      // What was generated lazily up to now still goes out (its event time has come); a large
      // pre-encoded backlog does not.
      const rest: PublishItem[] = [];
      if (!preEncoded || head >= queue.length) {
        for (let i = head; i < queue.length; i++) rest.push(queue[i]!);
        planner.finishAll(rest);
      }
      for (const item of rest) send(item);
    }
    const drained = await publisher.drain(options.drainTimeoutMs);
    if (!drained) warn(`${publisher.inFlight} publishes still unacknowledged after ${options.drainTimeoutMs} ms; not counted`);
    await publisher.close();
    if (progressTimer !== null) clearInterval(progressTimer);
    progress(true);
    return finish(summary, options, stopped, planner);
  } catch (err) {
    if (progressTimer !== null) clearInterval(progressTimer);
    await publisher.close();
    throw err;
  } finally {
    aborted.dispose();
  }
}

function finish(summary: SummaryBuilder, options: ResolvedOptions, stopped: Summary['stopped'], planner?: PublishPlanner): Summary {
  if (planner !== undefined) {
    summary.totals.duplicatesInjected = planner.duplicatesInjected;
    summary.totals.outOfOrderInjected = planner.outOfOrderInjected;
    summary.setAnomalies(planner.anomalies());
  }
  const result = summary.build(stopped);
  if (options.summaryFile !== undefined) writeSummaryFile(options.summaryFile, result);
  return result;
}

function connectionSpecs(options: ResolvedOptions, deviceIds: readonly string[]): ConnectionSpec[] {
  const tag = randomBytes(3).toString('hex');
  const specs: ConnectionSpec[] = [];
  for (let i = 0; i < options.connections; i++) {
    if (options.perDeviceCredentials) {
      const id = deviceIds[i]!;
      const spec: { -readonly [K in keyof ConnectionSpec]: ConnectionSpec[K] } = { clientId: `${id}:${tag}`, username: id };
      if (options.password !== undefined) spec.password = options.password.replaceAll('{device}', id);
      specs.push(spec);
    } else {
      // A gateway binds client ids to usernames (mqtt.clientIdPolicy): <username>:<suffix>.
      const base = `${options.clientIdPrefix}-${tag}-${i + 1}`;
      const spec: { -readonly [K in keyof ConnectionSpec]: ConnectionSpec[K] } = { clientId: options.username === undefined ? base : `${options.username}:${base}` };
      if (options.username !== undefined) spec.username = options.username;
      if (options.password !== undefined) spec.password = options.password;
      specs.push(spec);
    }
  }
  return specs;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise that resolves when `signal` aborts (never, without a signal). */
function abortPromise(signal: AbortSignal | undefined): { promise: Promise<void>; dispose(): void } {
  if (signal === undefined) return { promise: new Promise(() => undefined), dispose: () => undefined };
  let onAbort: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    onAbort = resolve;
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) };
}

/**
 * `npx tsx bench/push-proxy-bench.ts [--quick] [--phones N] [--events N] [--held N] [--json]`
 *
 * The push proxy (`pulsegate push-proxy`, a child process) against the local push service of the
 * tests (https, VAPID JWT checked, every body decrypted) and an SSE source serving the gateway's
 * stream contract from a real log, both in this process:
 *  1. pushes/s: N phones hand over one stream, M alerts are appended, and the clock runs from the
 *     first append to the last 201 (N x M pushes, each encrypted and signed by the proxy);
 *     then the same pushes straight from web-push in a fresh process (--raw-sender): the same-run
 *     ceiling the proxy's figure is a ratio of;
 *  2. hand-offs held per GB of RSS: H more hand-offs (distinct subscriptions, one shared stream)
 *     are made in five steps, the proxy's RSS (VmRSS of /proc) read after each; the figure is the slope.
 * Prints a summary to stderr and, with --json, one result line on stdout (bench/run.ts reads it).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import webpush from 'web-push';
import { startChildPushProxy } from '../test/helpers/push-proxy.js';
import { startLocalPushService } from '../test/helpers/push-service.js';
import { startSseSource } from '../test/helpers/sse-source.js';
import { makeTestPki } from '../test/helpers/tls-certs.js';
import { Args } from './lib/args.js';
import { cpuSeconds, rssMb, sleep } from './lib/procs.js';

const args = new Args(process.argv.slice(2));
const quick = args.has('quick');
const phones = args.num('phones', quick ? 50 : 200);
const events = args.num('events', quick ? 20 : 50);
const held = args.num('held', quick ? 5000 : 20_000);
const log = (s: string): void => void process.stderr.write(`${s}\n`);

/**
 * `--raw-sender FILE`: the ceiling of the same pushes without the proxy: web-push's
 * sendNotification straight from a fresh process, one sender loop per subscription (as the proxy
 * pushes to one phone at a time), the VAPID header signed once (as the proxy does). FILE holds
 * { subscriptions, events, vapid, subject, origin }.
 */
async function rawSender(file: string): Promise<void> {
  const { readFileSync } = await import('node:fs');
  const job = JSON.parse(readFileSync(file, 'utf8')) as { subscriptions: webpush.PushSubscription[]; events: number; vapid: { publicKey: string; privateKey: string }; subject: string; origin: string };
  const authorization = String(webpush.getVapidHeaders(job.origin, job.subject, job.vapid.publicKey, job.vapid.privateKey, 'aes128gcm').Authorization);
  const alert = { v: 1, id: '0123456789abcdef0123456789abcdef', summary: 'heart rate of athlete-1 above 175 bpm (alert 1)', severity: 'critical', state: 'FIRING' };
  const t0 = performance.now();
  await Promise.all(
    job.subscriptions.map(async (sub) => {
      for (let i = 0; i < job.events; i++) {
        await webpush.sendNotification(sub, JSON.stringify({ v: 1, eventId: String(i), stream: 'alerts', alert }), { headers: { Authorization: authorization }, TTL: 3600, urgency: 'high', topic: alert.id });
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(`${JSON.stringify({ event: 'raw', pushes: job.subscriptions.length * job.events, seconds, pushesPerSec: Math.round((job.subscriptions.length * job.events) / seconds) })}\n`);
}

async function main(): Promise<void> {
  const pki = makeTestPki();
  const source = await startSseSource();
  const push = await startLocalPushService(pki);
  const dir = mkdtempSync(join(tmpdir(), 'pulsegate-bench-push-'));
  const keys = webpush.generateVAPIDKeys();
  writeFileSync(join(dir, 'vapid.json'), JSON.stringify(keys));
  const configFile = join(dir, 'pulsegate.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      dataDir: dir,
      logLevel: 'info', // the ready line
      pushProxy: { host: '127.0.0.1', port: 0, gatewayUrl: source.url, vapidKeyFile: join(dir, 'vapid.json'), vapidSubject: 'mailto:bench@example.org', maxHandoffs: phones + held + 10 },
    }),
  );
  const profDir = args.str('cpu-prof-dir', '');
  const proxy = await startChildPushProxy(configFile, pki, profDir === '' ? {} : { execArgv: ['--cpu-prof', '--cpu-prof-dir', profDir] });
  const post = async (name: string, lastEventId: number | null): Promise<void> => {
    const res = await fetch(`${proxy.url}/v1/handoffs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ subscription: push.subscribe(name).json, lastEventId: lastEventId === null ? null : String(lastEventId) }),
    });
    if (res.status !== 201) throw new Error(`hand-off refused: ${res.status} ${await res.text()}`);
  };
  const inParallel = async (n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> => {
    let next = 0;
    await Promise.all(Array.from({ length: width }, async () => {
      while (next < n) await fn(next++);
    }));
  };
  try {
    // 1. Throughput.
    const start = await source.append();
    await inParallel(phones, 16, (i) => post(`t${i}`, start));
    const want = phones * events;
    const ok = (): number => push.received.reduce((n, r) => n + (r.status === 201 ? 1 : 0), 0);
    const cpu0 = cpuSeconds(proxy.child.pid!);
    const own0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < events; i++) await source.append();
    while (ok() < want) {
      if (performance.now() - t0 > 300_000) throw new Error(`only ${ok()} of ${want} pushes within 300 s`);
      await sleep(20);
    }
    const seconds = (performance.now() - t0) / 1000;
    const cpu1 = cpuSeconds(proxy.child.pid!);
    const own = process.cpuUsage(own0);
    const serviceCpuShare = Number(((own.user + own.system) / 1e6 / seconds).toFixed(2));
    const cpuMsPerPush = cpu0 === null || cpu1 === null ? null : Number((((cpu1 - cpu0) * 1000) / want).toFixed(3));
    const bad = push.received.filter((r) => r.error !== null).length;
    const pushesPerSec = Math.round(want / seconds);
    log(`push proxy: ${want.toLocaleString('en-US')} pushes (${phones} phones x ${events} alerts) in ${seconds.toFixed(2)} s = ${pushesPerSec.toLocaleString('en-US')} pushes/s; proxy CPU ${cpuMsPerPush ?? '-'} ms per push (${cpuMsPerPush === null ? '-' : ((cpuMsPerPush * pushesPerSec) / 1000).toFixed(2)} cores); push service + source process ${serviceCpuShare} cores; ${bad} failed verification`);

    // The same pushes straight from web-push in another process: the same-run ceiling.
    const received0 = push.received.length;
    const jobFile = join(dir, 'raw-job.json');
    writeFileSync(jobFile, JSON.stringify({ subscriptions: Array.from({ length: phones }, (_, i) => push.subscribe(`raw${i}`).json), events, vapid: keys, subject: 'mailto:bench@example.org', origin: push.origin }));
    const raw = await new Promise<{ pushesPerSec: number; seconds: number }>((resolve, reject) => {
      const c = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--raw-sender', jobFile], { env: { ...process.env, NODE_EXTRA_CA_CERTS: pki.ca.cert }, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1)!) as { pushesPerSec: number; seconds: number }) : reject(new Error(`raw sender exited with ${code}`))));
    });
    const rawBad = push.received.slice(received0).filter((r) => r.error !== null).length;
    const ofRaw = Number((pushesPerSec / raw.pushesPerSec).toFixed(2));
    log(`raw web-push, same pushes from a fresh process: ${raw.pushesPerSec.toLocaleString('en-US')} pushes/s (${rawBad} failed verification): the proxy reaches ${ofRaw}x of it`);

    // 2. Memory per hand-off held.
    const settle = async (): Promise<number> => {
      await sleep(1500);
      return rssMb(proxy.child.pid!) ?? NaN;
    };
    // RSS moves with the garbage collector: sampled after every fifth of them, and the figure is
    // the least-squares slope over the six points rather than the difference of two.
    const before = await settle();
    const points: [number, number][] = [[0, before]];
    const c0 = performance.now();
    let made = 0;
    for (let step = 1; step <= 5; step++) {
      const upTo = Math.round((held * step) / 5);
      const from = made;
      await inParallel(upTo - from, 32, (i) => post(`h${from + i}`, null));
      made = upTo;
      points.push([made, await settle()]);
    }
    const createSeconds = (performance.now() - c0) / 1000 - 5 * 1.5;
    const after = points.at(-1)![1];
    const mx = points.reduce((a, [x]) => a + x, 0) / points.length;
    const my = points.reduce((a, [, y]) => a + y, 0) / points.length;
    const slopeMb = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
    const perHandoffKb = slopeMb * 1024;
    const perGb = slopeMb > 0 ? Math.round(1024 / slopeMb) : null;
    log(
      `push proxy: ${held.toLocaleString('en-US')} hand-offs held: RSS ${points.map(([, y]) => y.toFixed(0)).join(' -> ')} MB, ${perHandoffKb.toFixed(2)} KiB each (slope) = ${perGb?.toLocaleString('en-US') ?? '-'} hand-offs per GB of RSS; ` +
        `made at ${Math.round(held / createSeconds).toLocaleString('en-US')}/s (each fsync'd before its 201); gateway connections ${source.open()}`,
    );
    const result = {
      event: 'result',
      phones,
      events,
      pushes: want,
      seconds: Number(seconds.toFixed(3)),
      pushesPerSec,
      proxyCpuMsPerPush: cpuMsPerPush,
      pushServiceCores: serviceCpuShare,
      rawWebPushPerSec: raw.pushesPerSec,
      ofRawWebPush: ofRaw,
      verificationFailures: bad,
      held,
      rssBeforeMb: Number(before.toFixed(1)),
      rssAfterMb: Number(after.toFixed(1)),
      kibPerHandoff: Number(perHandoffKb.toFixed(3)),
      handoffsPerGbRss: perGb,
      handoffsCreatedPerSec: Math.round(held / createSeconds),
      gatewayConnections: source.open(),
    };
    if (args.has('json')) process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    proxy.child.kill('SIGTERM');
    await proxy.exited;
    await push.close();
    await source.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

(args.has('raw-sender') ? rawSender(args.str('raw-sender', '')) : main()).catch((err: unknown) => {
  process.stderr.write(`push proxy bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});

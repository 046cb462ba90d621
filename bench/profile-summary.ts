/**
 * Summarises a V8 .cpuprofile (as written by `node --cpu-prof`): self time per function and per
 * code area (a package in node_modules, a gateway tier, node internals, GC), optionally only for
 * the samples inside a window of the monotonic clock (profile timestamps are CLOCK_MONOTONIC
 * microseconds, the same clock as process.hrtime, so a harness can cut out startup and shutdown).
 *
 *   tsx bench/profile-summary.ts FILE.cpuprofile [--top 20] [--from-us T] [--to-us T]
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Args } from './lib/args.js';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface HotSpot {
  readonly function: string;
  readonly where: string;
  readonly area: string;
  readonly selfMs: number;
  /** Share of the busy (non-idle) time in the window. */
  readonly pct: number;
  /** The caller that accounts for most of this function's self time, with its share of it. */
  readonly calledFrom: string;
}

export interface ProfileSummary {
  readonly windowMs: number;
  readonly busyMs: number;
  readonly idleMs: number;
  /** Busy time / window: how much of one core the main thread used. */
  readonly busyShare: number;
  readonly top: readonly HotSpot[];
  readonly areas: readonly { readonly area: string; readonly selfMs: number; readonly pct: number }[];
}

const ROOT_MARKERS = ['/gateway/', '/bench/', '/simulators/'];

/** Which part of the code a frame belongs to: a package, a gateway tier, node internals, or V8. */
export function areaOf(frame: CallFrame): string {
  const url = frame.url;
  if (url === '') {
    if (frame.functionName === '(garbage collector)') return 'GC';
    if (frame.functionName === '(program)') return 'V8/native (program)';
    if (frame.functionName === '(idle)') return 'idle';
    return 'native';
  }
  if (url.startsWith('node:')) {
    const m = /^node:(?:internal\/)?([^/]+)/.exec(url);
    return `node:${m?.[1] ?? url}`;
  }
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  for (const marker of ROOT_MARKERS) {
    const i = url.lastIndexOf(marker);
    if (i >= 0) {
      const parts = url.slice(i + 1).split('/');
      // gateway/<tier>/file.ts -> gateway/<tier>; gateway/main.ts -> gateway
      return parts.length > 2 ? `${parts[0]}/${parts[1]}` : parts[0]!;
    }
  }
  return 'other';
}

// ---- source maps (the benchmark runs a transpiled copy; print TypeScript lines) ------------------

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Per generated line: segments [generatedColumn, sourceIndex, sourceLine, sourceColumn]. */
function decodeMappings(mappings: string): number[][][] {
  const lines: number[][][] = [];
  let srcIdx = 0;
  let srcLine = 0;
  let srcCol = 0;
  for (const lineText of mappings.split(';')) {
    const segs: number[][] = [];
    let genCol = 0;
    for (const segText of lineText.split(',')) {
      if (segText === '') continue;
      const fields: number[] = [];
      let value = 0;
      let shift = 0;
      for (const ch of segText) {
        const digit = B64.indexOf(ch);
        value += (digit & 31) << shift;
        if (digit & 32) shift += 5;
        else {
          fields.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      genCol += fields[0] ?? 0;
      if (fields.length >= 4) {
        srcIdx += fields[1]!;
        srcLine += fields[2]!;
        srcCol += fields[3]!;
        segs.push([genCol, srcIdx, srcLine, srcCol]);
      }
    }
    lines.push(segs);
  }
  return lines;
}

interface LoadedMap {
  readonly sources: readonly string[];
  readonly lines: number[][][];
}
const maps = new Map<string, LoadedMap | null>();

function sourceMapFor(url: string): LoadedMap | null {
  if (!url.startsWith('file://')) return null;
  if (maps.has(url)) return maps.get(url)!;
  let loaded: LoadedMap | null = null;
  try {
    const mapFile = `${fileURLToPath(url)}.map`;
    if (existsSync(mapFile)) {
      const raw = JSON.parse(readFileSync(mapFile, 'utf8')) as { sources: string[]; mappings: string };
      loaded = { sources: raw.sources, lines: decodeMappings(raw.mappings) };
    }
  } catch {
    loaded = null;
  }
  maps.set(url, loaded);
  return loaded;
}

/** The original file and 1-based line of a generated position, when a source map is beside the file. */
function originalPosition(frame: CallFrame): string | null {
  const map = sourceMapFor(frame.url);
  if (map === null) return null;
  for (let line = frame.lineNumber; line >= 0 && line >= frame.lineNumber - 5; line--) {
    const segs = map.lines[line];
    if (segs === undefined || segs.length === 0) continue;
    let best = segs[0]!;
    if (line === frame.lineNumber) for (const s of segs) if (s[0]! <= frame.columnNumber) best = s;
    return `${map.sources[best[1]!] ?? '?'}:${best[2]! + 1}`;
  }
  return null;
}

function shortWhere(frame: CallFrame): string {
  if (frame.url === '') return '';
  const mapped = originalPosition(frame);
  if (mapped !== null) return mapped;
  let u = frame.url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) u = u.slice(nm + '/node_modules/'.length);
  else {
    for (const marker of ROOT_MARKERS) {
      const i = u.lastIndexOf(marker);
      if (i >= 0) {
        u = u.slice(i + 1);
        break;
      }
    }
  }
  return `${u}:${frame.lineNumber + 1}`;
}

export function summarizeProfile(profile: CpuProfile, options: { top?: number; fromUs?: number; toUs?: number } = {}): ProfileSummary {
  const top = options.top ?? 20;
  const fromUs = options.fromUs ?? -Infinity;
  const toUs = options.toUs ?? Infinity;
  const byId = new Map<number, ProfileNode>();
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parentOf.set(c, n.id);
  }

  const selfUs = new Map<number, number>();
  let t = profile.startTime;
  const n = profile.samples.length;
  for (let i = 0; i < n; i++) {
    t += profile.timeDeltas[i] ?? 0;
    // A sample stands for the time until the next one (the last one until endTime).
    const next = i + 1 < n ? t + (profile.timeDeltas[i + 1] ?? 0) : profile.endTime;
    const start = Math.max(t, fromUs);
    const end = Math.min(next, toUs);
    if (end <= start) continue;
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (end - start));
  }

  const fnTotals = new Map<string, { frame: CallFrame; us: number; callers: Map<string, number> }>();
  const areaTotals = new Map<string, number>();
  let idleUs = 0;
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) continue;
    const area = areaOf(frame);
    if (area === 'idle') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    areaTotals.set(area, (areaTotals.get(area) ?? 0) + us);
    const key = `${frame.functionName}\u0000${frame.url}\u0000${frame.lineNumber}`;
    let entry = fnTotals.get(key);
    if (entry) entry.us += us;
    else fnTotals.set(key, (entry = { frame, us, callers: new Map() }));
    const parentId = parentOf.get(id);
    const parent = parentId === undefined ? undefined : byId.get(parentId)?.callFrame;
    const caller = parent === undefined ? '' : `${parent.functionName || '(anonymous)'} ${shortWhere(parent)}`.trim();
    entry.callers.set(caller, (entry.callers.get(caller) ?? 0) + us);
  }
  const pct = (us: number): number => (busyUs > 0 ? Number(((100 * us) / busyUs).toFixed(1)) : 0);
  const ms = (us: number): number => Number((us / 1000).toFixed(1));
  const windowUs = Math.min(toUs, profile.endTime) - Math.max(fromUs, profile.startTime);
  return {
    windowMs: ms(windowUs),
    busyMs: ms(busyUs),
    idleMs: ms(idleUs),
    busyShare: windowUs > 0 ? Number((busyUs / windowUs).toFixed(3)) : 0,
    top: [...fnTotals.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map(({ frame, us, callers }) => {
        const [caller, callerUs] = [...callers.entries()].sort((a, b) => b[1] - a[1])[0] ?? ['', 0];
        return {
          function: frame.functionName || '(anonymous)',
          where: shortWhere(frame),
          area: areaOf(frame),
          selfMs: ms(us),
          pct: pct(us),
          calledFrom: caller === '' ? '' : `${caller} (${Math.round((100 * callerUs) / us)}%)`,
        };
      }),
    areas: [...areaTotals.entries()].sort((a, b) => b[1] - a[1]).map(([area, us]) => ({ area, selfMs: ms(us), pct: pct(us) })),
  };
}

export function formatSummary(title: string, s: ProfileSummary, areas = 12): string {
  const lines = [
    `${title}: ${s.windowMs} ms window, main thread busy ${s.busyMs} ms (${(s.busyShare * 100).toFixed(0)} % of one core); % = share of busy time`,
    '  self %   self ms  function                        where                                      called mostly from',
  ];
  for (const h of s.top) {
    lines.push(
      `  ${h.pct.toFixed(1).padStart(6)} ${h.selfMs.toFixed(1).padStart(9)}  ${h.function.slice(0, 30).padEnd(30)}  ${h.where.slice(0, 42).padEnd(42)} ${h.calledFrom}`,
    );
  }
  lines.push('  by area: ' + s.areas.slice(0, areas).map((a) => `${a.area} ${a.pct.toFixed(1)}%`).join(', '));
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = new Args(process.argv.slice(2));
  const file = process.argv.slice(2).find((a) => a.endsWith('.cpuprofile'));
  if (file === undefined) {
    process.stderr.write('usage: tsx bench/profile-summary.ts FILE.cpuprofile [--top 20] [--from-us T] [--to-us T]\n');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const summary = summarizeProfile(profile, {
    top: args.num('top', 20),
    ...(args.has('from-us') ? { fromUs: args.num('from-us', 0) } : {}),
    ...(args.has('to-us') ? { toUs: args.num('to-us', 0) } : {}),
  });
  process.stdout.write(args.has('json') ? JSON.stringify(summary, null, 2) + '\n' : formatSummary(file, summary) + '\n');
}

import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeDeadLetter } from './dead-letter.js';
import { decodeIngestRecord } from './ingest-record-format.js';
import { decodeOutgoing, decodeOutgoingAck } from './outbox.js';
import { classifyIssues, parseSegmentFileName, scanSegmentBuffer } from './record-format.js';
import { RECORD_TYPES } from './types.js';
import { coversOfBatch } from '../sinks/batch-codec.js';

const USAGE = `usage:
  pulsegate log inspect DIR [--from N] [--limit N]   print records (default limit 100; 0 = all)
  pulsegate log verify DIR [--group-commit-max-bytes N]
                                                    check every CRC and offset continuity
`;

const TYPE_NAMES = new Map<number, string>(Object.entries(RECORD_TYPES).map(([name, n]) => [n, name]));
const PREVIEW_BYTES = 32;

interface SegmentEntry {
  readonly name: string;
  readonly base: number;
}

async function listSegments(dir: string): Promise<SegmentEntry[]> {
  return (await readdir(dir))
    .map((name) => ({ name, base: parseSegmentFileName(name) }))
    .filter((e): e is SegmentEntry => e.base !== null)
    .sort((a, b) => a.base - b.base);
}

function rawPreview(payload: Buffer): string {
  const head = payload.subarray(0, PREVIEW_BYTES);
  let printable = 0;
  for (const b of head) if (b >= 0x20 && b < 0x7f) printable++;
  const more = payload.length > PREVIEW_BYTES ? '…' : '';
  if (head.length > 0 && printable >= head.length * 0.8) {
    return JSON.stringify(head.toString('latin1').replace(/[^\x20-\x7e]/g, '.') + more);
  }
  return head.toString('hex') + more;
}

/** A short, payload-safe summary: routing fields for known record types, raw bytes otherwise. */
function preview(type: number, payload: Buffer): string {
  try {
    switch (type) {
      case RECORD_TYPES.ingest:
        return `topic=${decodeIngestRecord(payload).topic}`;
      case RECORD_TYPES.deadLetter: {
        const d = decodeDeadLetter(payload);
        const cut = d.payloadBytes !== undefined && d.payloadBytes > d.payload.length ? ` (first ${d.payload.length} kept)` : '';
        return `reason=${d.reason} topic=${d.topic} ${JSON.stringify(d.detail.slice(0, 80))} payload=${d.payloadBytes ?? d.payload.length}B${cut}`;
      }
      case RECORD_TYPES.outgoing: {
        const o = decodeOutgoing(payload);
        // A store batch says which ingest records' raw readings it completes (a replay passes over them).
        const covers = coversOfBatch(o.payload);
        return `destination=${o.destination} ${covers === null ? '' : `covers=[${covers.from},${covers.below}) `}${rawPreview(o.payload)}`;
      }
      case RECORD_TYPES.outgoingAck: {
        const a = decodeOutgoingAck(payload);
        return `destination=${a.destination} acks=${a.offset}${a.outcome === 1 ? ' (dead-lettered)' : ''}`;
      }
      default:
        return rawPreview(payload);
    }
  } catch (err) {
    return `undecodable (${(err as Error).message}) ${rawPreview(payload)}`;
  }
}

function intFlag(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(args[i + 1]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name} needs a non-negative integer`);
  args.splice(i, 2);
  return v;
}

async function inspect(dir: string, from: number, limit: number, out: NodeJS.WritableStream): Promise<number> {
  const segs = await listSegments(dir);
  let printed = 0;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const nextBase = segs[i + 1]?.base ?? Infinity;
    if (nextBase <= from) continue;
    const data = await readFile(join(dir, seg.name));
    const lines: string[] = [];
    const scan = scanSegmentBuffer(data, seg.base, Infinity, (offset, type, ts, ps, pe) => {
      if (offset < from || (limit > 0 && printed >= limit)) return;
      printed++;
      const iso = Number.isFinite(ts) ? new Date(ts).toISOString() : String(ts);
      lines.push(`${offset}\t${TYPE_NAMES.get(type) ?? `type${type}`}\t${iso}\t${pe - ps}\t${preview(type, data.subarray(ps, pe))}`);
    });
    out.write(lines.length > 0 ? lines.join('\n') + '\n' : '');
    for (const is of scan.issues) {
      out.write(`# ${seg.name}: ${is.reason} damage at byte ${is.position} (offset ${is.expectedOffset}), ${is.end - is.position} bytes skipped\n`);
    }
    if (limit > 0 && printed >= limit) break;
  }
  return 0;
}

async function verify(dir: string, groupMaxBytes: number, out: NodeJS.WritableStream): Promise<number> {
  const segs = await listSegments(dir);
  const problems: string[] = [];
  const notes: string[] = [];
  let records = 0;
  let bytes = 0;
  let expectedNext: number | null = null;
  let first = -1;
  let last = -1;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    if (expectedNext !== null && seg.base !== expectedNext) {
      problems.push(
        seg.base > expectedNext
          ? `${seg.name}: offsets ${expectedNext}..${seg.base - 1} are missing (a segment is missing before it)`
          : `${seg.name}: starts at offset ${seg.base}, overlapping the previous segment (next expected ${expectedNext})`,
      );
    }
    const data = await readFile(join(dir, seg.name));
    const scan = scanSegmentBuffer(data, seg.base, Infinity);
    const { tailFrom, mid } = classifyIssues(scan, i === segs.length - 1, groupMaxBytes);
    for (const is of mid) {
      problems.push(`${seg.name}: ${is.reason} damage at offset ${is.expectedOffset} (byte ${is.position}, ${is.end - is.position} bytes)`);
    }
    if (tailFrom >= 0) {
      notes.push(`${seg.name}: torn tail of ${scan.fileBytes - tailFrom} bytes at byte ${tailFrom} (a crash mid group commit; start truncates it)`);
    }
    records += scan.records;
    bytes += scan.fileBytes;
    if (scan.records > 0) {
      if (first < 0) first = scan.firstOffset;
      last = scan.lastOffset;
    }
    expectedNext = scan.lastOffset + 1;
  }
  out.write(`segments: ${segs.length}\nrecords: ${records}\nbytes: ${bytes}\n`);
  out.write(`offsets: ${records > 0 ? `${first}..${last}` : 'none'}\n`);
  for (const n of notes) out.write(`note: ${n}\n`);
  for (const p of problems) out.write(`CORRUPT: ${p}\n`);
  out.write(problems.length === 0 ? 'ok\n' : `${problems.length} problem(s)\n`);
  return problems.length === 0 ? 0 : 1;
}

/**
 * `pulsegate log inspect|verify DIR ...`. Read-only: unlike start(), it never truncates a torn
 * tail. Returns the exit code: 0 ok, 1 corruption found, 2 usage or I/O error.
 */
export async function runLogCommand(argv: string[], out: NodeJS.WritableStream): Promise<number> {
  const args = argv[0] === 'log' ? argv.slice(1) : argv.slice();
  const command = args.shift();
  try {
    if (command === 'inspect') {
      const from = intFlag(args, '--from', 0);
      const limit = intFlag(args, '--limit', 100);
      if (args.length !== 1) throw new Error('inspect needs exactly one DIR');
      return await inspect(args[0]!, from, limit, out);
    }
    if (command === 'verify') {
      const groupMax = intFlag(args, '--group-commit-max-bytes', 1024 * 1024);
      if (args.length !== 1) throw new Error('verify needs exactly one DIR');
      return await verify(args[0]!, groupMax, out);
    }
    out.write(USAGE);
    return 2;
  } catch (err) {
    out.write(`error: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
}

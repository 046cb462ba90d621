import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export const HANDOFF_END_REASONS = ['taken_back', 'expired', 'gone', 'rejected', 'replaced', 'stream_refused'] as const;
export type HandoffEndReason = (typeof HANDOFF_END_REASONS)[number];

/** A Web Push subscription as PushSubscription.toJSON() gives it. */
export interface PushSubscriptionJson {
  readonly endpoint: string;
  readonly keys: { readonly p256dh: string; readonly auth: string };
}

/** Dynamic filters of a gateway stream (query parameters of /v1/streams/<name>). */
export type StreamFilter = Readonly<Record<string, string>>;

export type NewHandoff = Omit<HandoffRow, 'delivered' | 'state' | 'endedReason' | 'endedAt'>;

export interface HandoffRow {
  readonly id: string;
  readonly subscription: PushSubscriptionJson;
  readonly stream: string;
  readonly filter: StreamFilter;
  /** stream + canonical filter: hand-offs with the same key share one connection. */
  readonly streamKey: string;
  /** The id the phone handed over (null: it had seen none). */
  readonly startEventId: number | null;
  /** Last event id done with: pushed and acked (or dropped as too large). null: none yet. */
  readonly position: number | null;
  readonly delivered: number;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly state: 'active' | 'ended';
  readonly endedReason: HandoffEndReason | null;
  readonly endedAt: number | null;
}

/**
 * The proxy's durable state, one SQLite file (WAL): the hand-offs with each one's position in its
 * stream, and the push log (sender-based: a push is logged before it is sent and marked acked
 * after the push service's 201, in the same transaction that moves the position). A commit is in
 * the WAL before the call returns, so it survives kill -9; a new hand-off is also fsync'd before
 * its 201 (synchronous=FULL for that one transaction) so that a power loss cannot forget it either.
 * Pushes run at synchronous=NORMAL: a power loss can take back the last positions, which repeats
 * those pushes with the same event id (the service worker drops them).
 */
export class HandoffStore {
  private readonly db: Database.Database;
  private readonly stmts;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    this.db = new Database(join(dataDir, 'push-proxy.sqlite'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS handoffs (
        id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, subscription TEXT NOT NULL, stream TEXT NOT NULL,
        filter TEXT NOT NULL, stream_key TEXT NOT NULL, start_event_id INTEGER, position INTEGER,
        delivered INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        state TEXT NOT NULL, ended_reason TEXT, ended_at INTEGER);
      CREATE UNIQUE INDEX IF NOT EXISTS handoffs_active_endpoint ON handoffs(endpoint) WHERE state = 'active';
      CREATE TABLE IF NOT EXISTS pushes (
        handoff_id TEXT NOT NULL, event_id INTEGER NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL,
        logged_at INTEGER NOT NULL, acked_at INTEGER, PRIMARY KEY (handoff_id, event_id));
    `);
    const db = this.db;
    this.stmts = {
      insert: db.prepare(`INSERT INTO handoffs (id, endpoint, subscription, stream, filter, stream_key, start_event_id, position, delivered, created_at, expires_at, state)
        VALUES (@id, @endpoint, @subscription, @stream, @filter, @streamKey, @startEventId, @position, 0, @createdAt, @expiresAt, 'active')`),
      activeByEndpoint: db.prepare(`SELECT id FROM handoffs WHERE endpoint = ? AND state = 'active'`),
      end: db.prepare(`UPDATE handoffs SET state = 'ended', ended_reason = ?, ended_at = ? WHERE id = ? AND state = 'active'`),
      get: db.prepare(`SELECT * FROM handoffs WHERE id = ?`),
      active: db.prepare(`SELECT * FROM handoffs WHERE state = 'active' ORDER BY created_at`),
      countActive: db.prepare(`SELECT count(*) AS n FROM handoffs WHERE state = 'active'`),
      setPosition: db.prepare(`UPDATE handoffs SET position = ? WHERE id = ? AND (position IS NULL OR position < ?)`),
      logPush: db.prepare(`INSERT INTO pushes (handoff_id, event_id, state, attempts, logged_at) VALUES (?, ?, 'sent', 1, ?)
        ON CONFLICT (handoff_id, event_id) DO UPDATE SET attempts = attempts + 1`),
      ackPush: db.prepare(`UPDATE pushes SET state = ?, acked_at = ? WHERE handoff_id = ? AND event_id = ?`),
      advance: db.prepare(`UPDATE handoffs SET position = ?, delivered = delivered + ? WHERE id = ?`),
      expired: db.prepare(`SELECT id FROM handoffs WHERE state = 'active' AND expires_at <= ?`),
      deleteEndedPushes: db.prepare(`DELETE FROM pushes WHERE handoff_id IN (SELECT id FROM handoffs WHERE state = 'ended' AND ended_at <= ?)`),
      deleteEnded: db.prepare(`DELETE FROM handoffs WHERE state = 'ended' AND ended_at <= ?`),
      deleteAcked: db.prepare(`DELETE FROM pushes WHERE state != 'sent' AND acked_at <= ?`),
      unacked: db.prepare(`SELECT event_id FROM pushes WHERE handoff_id = ? AND state = 'sent' ORDER BY event_id`),
    };
  }

  /** Stores a new active hand-off (fsync'd); an active one for the same endpoint ends as `replaced`. Returns the replaced id. */
  create(row: NewHandoff): string | null {
    return this.createMany([row])[0]!;
  }

  /** Several new hand-offs in one fsync'd transaction (a group commit); per row, the id it replaced. */
  createMany(rows: readonly NewHandoff[]): (string | null)[] {
    const tx = this.db.transaction((): (string | null)[] => rows.map((row) => this.insertOne(row)));
    this.db.pragma('synchronous = FULL');
    try {
      return tx();
    } finally {
      this.db.pragma('synchronous = NORMAL');
    }
  }

  private insertOne(row: NewHandoff): string | null {
    const old = this.stmts.activeByEndpoint.get(row.subscription.endpoint) as { id: string } | undefined;
    if (old !== undefined) this.stmts.end.run('replaced', row.createdAt, old.id);
    this.stmts.insert.run({
      id: row.id,
      endpoint: row.subscription.endpoint,
      subscription: JSON.stringify(row.subscription),
      stream: row.stream,
      filter: JSON.stringify(row.filter),
      streamKey: row.streamKey,
      startEventId: row.startEventId,
      position: row.position,
      createdAt: row.createdAt,
      expiresAt: row.expiresAt,
    });
    return old?.id ?? null;
  }

  /** Ends an active hand-off; false when it was not active. */
  end(id: string, reason: HandoffEndReason, at: number): boolean {
    return this.stmts.end.run(reason, at, id).changes === 1;
  }

  get(id: string): HandoffRow | null {
    const r = this.stmts.get.get(id) as Record<string, unknown> | undefined;
    return r === undefined ? null : fromRow(r);
  }

  active(): HandoffRow[] {
    return (this.stmts.active.all() as Record<string, unknown>[]).map(fromRow);
  }

  countActive(): number {
    return (this.stmts.countActive.get() as { n: number }).n;
  }

  /** A hand-off that had no position takes the stream's current one (it wants what comes after). */
  setPosition(id: string, position: number): void {
    this.stmts.setPosition.run(position, id, position);
  }

  /** Before the send: the push is in the log (a crash from here on resends it, with the same event id). */
  logPush(handoffId: string, eventId: number, at: number): void {
    this.stmts.logPush.run(handoffId, eventId, at);
  }

  /** After the push service's 201 (`acked`), or when the event is given up (`dropped`): one transaction with the position. */
  settlePush(handoffId: string, eventId: number, outcome: 'acked' | 'dropped', at: number): void {
    this.settleTx(handoffId, eventId, outcome, at);
  }
  private readonly settleTx = (handoffId: string, eventId: number, outcome: 'acked' | 'dropped', at: number): void => {
    this.db.transaction(() => {
      this.stmts.ackPush.run(outcome, at, handoffId, eventId);
      this.stmts.advance.run(eventId, outcome === 'acked' ? 1 : 0, handoffId);
    })();
  };

  /** Event ids logged as sent and not acked (what a crash would resend). */
  unacked(handoffId: string): number[] {
    return (this.stmts.unacked.all(handoffId) as { event_id: number }[]).map((r) => r.event_id);
  }

  /** Ids of active hand-offs past their expiry. */
  expired(now: number): string[] {
    return (this.stmts.expired.all(now) as { id: string }[]).map((r) => r.id);
  }

  /** Deletes ended hand-offs and settled pushes older than `before`; returns the hand-offs deleted. */
  prune(before: number): number {
    return this.db.transaction(() => {
      this.stmts.deleteEndedPushes.run(before);
      this.stmts.deleteAcked.run(before);
      return this.stmts.deleteEnded.run(before).changes;
    })();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

function fromRow(r: Record<string, unknown>): HandoffRow {
  return {
    id: r['id'] as string,
    subscription: JSON.parse(r['subscription'] as string) as PushSubscriptionJson,
    stream: r['stream'] as string,
    filter: JSON.parse(r['filter'] as string) as StreamFilter,
    streamKey: r['stream_key'] as string,
    startEventId: r['start_event_id'] as number | null,
    position: r['position'] as number | null,
    delivered: r['delivered'] as number,
    createdAt: r['created_at'] as number,
    expiresAt: r['expires_at'] as number,
    state: r['state'] as 'active' | 'ended',
    endedReason: r['ended_reason'] as HandoffEndReason | null,
    endedAt: r['ended_at'] as number | null,
  };
}

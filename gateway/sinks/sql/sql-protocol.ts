/** Messages between the gateway and a SQL query process (sql-process.ts), as JSON over IPC. */
import type { SqlPosition } from './sql-guard.js';

export interface SqlProcessRequest {
  readonly id: number;
  readonly sql: string;
  readonly maxRows: number;
}

/** Sent once by a query process when it has loaded (the time limit of its first query starts then). */
export interface SqlProcessReady {
  readonly ready: true;
}

export type SqlProcessReply =
  | { readonly id: number; readonly ok: true; readonly count: number; readonly truncated: boolean; readonly json: string }
  | {
      readonly id: number;
      readonly ok: false;
      readonly code: 'GW_ERR_QUERY_INVALID' | 'GW_ERR_SINK_QUERY' | 'GW_ERR_SINK_UNAVAILABLE';
      readonly message: string;
      readonly position?: SqlPosition;
    };

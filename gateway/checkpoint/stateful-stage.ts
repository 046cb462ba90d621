import { GatewayError } from '../errors.js';

/**
 * A stage whose state a checkpoint keeps (the sequence tracker, the window engine; later the alert
 * engine). One checkpoint offset covers every stage: their snapshots are taken in one synchronous
 * step, so each holds the effect of exactly the records below that offset.
 */
export interface StatefulStage {
  /** Key of the stage's state in the checkpoint; never changes once released. */
  readonly name: string;
  /** JSON-serializable state; restore(snapshot()) gives identical future output. */
  snapshot(): unknown;
  restore(state: unknown): void;
}

/** Checkpoint data: each stage's state under its name. */
export interface StagesState {
  readonly stages: Readonly<Record<string, unknown>>;
}

/**
 * Names of the two stages the first checkpoint format (`{ tracker, windows }`) held, before
 * states were keyed by stage name.
 */
const LEGACY_NAMES = { tracker: 'sequence-tracker', windows: 'windows' } as const;

export function snapshotStages(stages: readonly StatefulStage[]): StagesState {
  const out: Record<string, unknown> = {};
  for (const s of stages) out[s.name] = s.snapshot();
  return { stages: out };
}

/**
 * Restores each stage from its state in `data`, in either format. A stage with no state in the
 * checkpoint (one added since it was written) starts empty; the state of a stage that no longer
 * exists is ignored. Returns the names of the stages restored.
 */
export function restoreStages(stages: readonly StatefulStage[], data: unknown): string[] {
  const states = statesOf(data);
  const restored: string[] = [];
  for (const s of stages) {
    if (!Object.hasOwn(states, s.name)) continue;
    s.restore(states[s.name]);
    restored.push(s.name);
  }
  return restored;
}

function statesOf(data: unknown): Readonly<Record<string, unknown>> {
  if (typeof data !== 'object' || data === null) throw new GatewayError('GW_ERR_CHECKPOINT', 'checkpoint data is not an object of stage states');
  const d = data as Record<string, unknown>;
  if (typeof d['stages'] === 'object' && d['stages'] !== null) return d['stages'] as Record<string, unknown>;
  if ('tracker' in d && 'windows' in d) return { [LEGACY_NAMES.tracker]: d['tracker'], [LEGACY_NAMES.windows]: d['windows'] };
  throw new GatewayError('GW_ERR_CHECKPOINT', 'checkpoint data holds neither stage states nor the first format ({ tracker, windows })');
}

/**
 * The episode state machine of a threshold (and loss) rule for one key, over that key's windows in
 * event-time order. Pure: the engine and the reference in the tests run this same definition.
 *
 *   ok       --breach-->                 pending (since = window start)
 *   pending  --breach, end - since >= for--> FIRING (firedAt = window end)
 *   pending  --no breach-->              ok
 *   firing   --clear-->                  clearing since window start; RESOLVED when
 *                                        end - clearSince >= clearFor (resolvedAt = window end)
 *   firing   --breach or inside band-->  firing (a clearing run starts over)
 *
 * breach: value > fire level ("above") or < fire level ("below"); clear: value < clear level
 * ("above") or > clear level ("below"); between the two is the hysteresis band, which holds the
 * current state. A window that does not start where the previous one ended (no readings in
 * between) restarts a pending or clearing run: "sustained" means over contiguous windows.
 */
export interface EpisodeRule {
  readonly direction: 'above' | 'below';
  readonly fireLevel: number;
  readonly clearLevel: number;
  readonly forMs: number;
  readonly clearForMs: number;
}

export interface EpisodeState {
  readonly phase: 'ok' | 'pending' | 'firing';
  /** pending: start of the breach run; firing: the episode start. */
  readonly since: number;
  readonly firedAt: number;
  /** Start of the current clear run while firing, else null. */
  readonly clearSince: number | null;
  /** Start and end of the last window evaluated (-Infinity before any). */
  readonly lastStart: number;
  readonly lastEnd: number;
}

export const INITIAL_EPISODE_STATE: EpisodeState = { phase: 'ok', since: 0, firedAt: 0, clearSince: null, lastStart: -Infinity, lastEnd: -Infinity };

export interface EpisodeWindow {
  readonly start: number;
  readonly end: number;
  readonly value: number;
}

export type EpisodeStep =
  | { readonly state: EpisodeState; readonly transition: null }
  | { readonly state: EpisodeState; readonly transition: 'FIRING'; readonly episodeStart: number; readonly firedAt: number }
  | { readonly state: EpisodeState; readonly transition: 'RESOLVED'; readonly episodeStart: number; readonly firedAt: number; readonly resolvedAt: number };

/** Whether `w` is evaluated at all: only a window later than the last one evaluated is. */
export function isNewer(s: EpisodeState, w: Pick<EpisodeWindow, 'start'>): boolean {
  return w.start > s.lastStart;
}

export function stepEpisode(rule: EpisodeRule, s: EpisodeState, w: EpisodeWindow): EpisodeStep {
  const breach = rule.direction === 'above' ? w.value > rule.fireLevel : w.value < rule.fireLevel;
  const clear = rule.direction === 'above' ? w.value < rule.clearLevel : w.value > rule.clearLevel;
  const contiguous = w.start <= s.lastEnd;
  const moved = { lastStart: w.start, lastEnd: w.end };
  if (s.phase === 'firing') {
    if (!clear) return { state: { ...s, ...moved, clearSince: null }, transition: null };
    const clearSince = s.clearSince !== null && contiguous ? s.clearSince : w.start;
    if (w.end - clearSince >= rule.clearForMs) {
      return { state: { ...INITIAL_EPISODE_STATE, ...moved }, transition: 'RESOLVED', episodeStart: s.since, firedAt: s.firedAt, resolvedAt: w.end };
    }
    return { state: { ...s, ...moved, clearSince }, transition: null };
  }
  if (!breach) return { state: { ...INITIAL_EPISODE_STATE, ...moved }, transition: null };
  const since = s.phase === 'pending' && contiguous ? s.since : w.start;
  if (w.end - since >= rule.forMs) {
    return { state: { phase: 'firing', since, firedAt: w.end, clearSince: null, ...moved }, transition: 'FIRING', episodeStart: since, firedAt: w.end };
  }
  return { state: { phase: 'pending', since, firedAt: 0, clearSince: null, ...moved }, transition: null };
}

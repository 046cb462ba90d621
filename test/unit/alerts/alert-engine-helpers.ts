import { ManualClock } from '../../../gateway/clock.js';
import { AlertEngine } from '../../../gateway/alerts/alert-engine.js';
import { compileAlertRules, type CompiledRule } from '../../../gateway/config/alert-rules.js';
import type { AlertRuleConfig } from '../../../gateway/config/config.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import type { WindowResult } from '../../../gateway/window/types.js';
import type { AlertTransition } from '../../../gateway/wire/alert.js';

export const WINDOWS = { defaultSizesMs: [10_000, 60_000], sizesMs: {} };

export function rules(configs: readonly AlertRuleConfig[]): readonly CompiledRule[] {
  const { rules: compiled, problems } = compileAlertRules({ enabled: true, defaultRules: false, rules: configs, maxKeys: 1000, silenceSchedule: '* * * * * *' }, createKindRegistry(), WINDOWS);
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return compiled;
}

/** An engine whose "log" is an array: offsets are indexes. */
export function engineWithLog(configs: readonly AlertRuleConfig[], options: { maxKeys?: number; clock?: ManualClock; log?: AlertTransition[] } = {}) {
  const log = options.log ?? [];
  const clock = options.clock ?? new ManualClock(0);
  const engine = new AlertEngine({
    rules: rules(configs),
    maxKeys: options.maxKeys ?? 1000,
    clock,
    record: (t) => {
      log.push(t);
      return { offset: log.length - 1, logged: false };
    },
  });
  return { engine, log, clock };
}

export function hrWindow(deviceId: string, start: number, value: number, revision = 0, aggregate = 'bpm_mean'): WindowResult {
  return { kind: 'heart-rate', deviceId, sizeMs: 10_000, slideMs: 10_000, start, end: start + 10_000, group: {}, values: { [aggregate]: value }, revision };
}

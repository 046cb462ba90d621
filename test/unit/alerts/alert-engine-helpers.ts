import { ManualClock } from '../../../gateway/clock.js';
import { AlertEngine } from '../../../gateway/alerts/alert-engine.js';
import { compileAlertRules, type CompiledRule } from '../../../gateway/config/alert-rules.js';
import type { AlertRuleConfig } from '../../../gateway/config/config.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import type { WindowResult } from '../../../gateway/window/types.js';
import type { FileMessageLog } from '../../../gateway/log/message-log.js';
import { createAlertSenderLog } from '../../../gateway/log/sender-log.js';
import { RECORD_TYPES } from '../../../gateway/log/types.js';
import { decodeAlertTransition, type AlertTransition } from '../../../gateway/wire/alert.js';
import { readAll } from '../log/log-test-helpers.js';

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

/** The alert log and engine as the gateway wires them (gateway/main.ts), on a real log. */
export function gatewayAlerts(log: FileMessageLog, clock: ManualClock, compiled: readonly CompiledRule[]) {
  const alertLog = createAlertSenderLog(log);
  const engine = new AlertEngine({ rules: compiled, maxKeys: 100, clock, record: (t) => alertLog.append(t) });
  return { alertLog, engine };
}

/** The alert transitions in the log, in log order. */
export async function loggedTransitions(log: FileMessageLog): Promise<AlertTransition[]> {
  return (await readAll(log)).filter((r) => r.type === RECORD_TYPES.alert).map((r) => decodeAlertTransition(r.payload));
}

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileAlertRules, DEFAULT_ALERT_RULES } from '../../../gateway/config/alert-rules.js';
import { loadConfig } from '../../../gateway/config/load-config.js';
import { isGatewayError } from '../../../gateway/errors.js';
import { createKindRegistry } from '../../../gateway/kinds/registry.js';
import { WINDOWS } from './alert-engine-helpers.js';

describe('alert rules in the config', () => {
  it('should list every mistake of every rule at once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pg-alerts-'));
    const f = join(dir, 'bad.yaml');
    writeFileSync(
      f,
      [
        'alerts:',
        '  silenceSchedule: "every minute"',
        '  rules:',
        '    - { id: a, kind: threshold, sensorKind: heart-rate, aggregate: bpm_median, above: 1, below: 2 }',
        '    - { id: b, kind: threshold, sensorKind: boat, aggregate: count, above: 1 }',
        '    - { id: c, kind: threshold, sensorKind: bridge, window: 7s, aggregate: count, where: { colour: red, vehicleClass: TANK }, above: 5, clear: 9 }',
        '    - { id: d, kind: silence }',
        '    - { id: e, kind: loss, above: 2, after: 5s }',
        '    - { id: a, kind: silence, after: 1m }',
        '    - { id: f, kind: threshold, sensorKind: heart-rate, aggregate: bpm_mean, below: 10, for: soon }',
      ].join('\n'),
    );
    let problems: string[] = [];
    try {
      loadConfig({ file: f, env: {} });
      expect.unreachable();
    } catch (err) {
      expect(isGatewayError(err, 'GW_ERR_CONFIG_INVALID')).toBe(true);
      problems = (err as { details: { problems: string[] } }).details.problems;
    }
    // Schema problems come first (the `for: soon` duration); fix that and the rules are judged.
    expect(problems.join('\n')).toContain('alerts.rules.6.for');
    writeFileSync(f, readFileSync(f, 'utf8').replace('for: soon', 'for: 10s'));
    try {
      loadConfig({ file: f, env: {} });
      expect.unreachable();
    } catch (err) {
      problems = (err as { details: { problems: string[] } }).details.problems;
    }
    const text = problems.join('\n');
    for (const expected of [
      'alerts.rules[0] ("a"): give exactly one of "above" and "below"',
      '"bpm_median" is not an aggregate of heart-rate',
      'alerts.rules[1] ("b").sensorKind: unknown kind "boat"',
      'alerts.rules[2] ("c").window: 7000 ms is not a window size of bridge',
      'alerts.rules[2] ("c").where.colour: not a group field of bridge',
      'alerts.rules[2] ("c").where.vehicleClass: "TANK" is not one of',
      'alerts.rules[2] ("c").clear: for an "above" rule the clear level must not be above it',
      'alerts.rules[3] ("d").after: required for a silence rule',
      'alerts.rules[4] ("e"): "after" does not apply to a loss rule',
      'alerts.rules[4] ("e").above: a fraction in (0, 1), got 2',
      'alerts.rules[5].id: "a" is used by an earlier rule',
      'alerts.silenceSchedule: not a valid node-cron expression',
    ]) {
      expect(text).toContain(expected);
    }
  });

  it('should compile the built-in rules for the built-in kinds', () => {
    const { rules, problems } = compileAlertRules({ enabled: true, defaultRules: true, rules: [], maxKeys: 10, silenceSchedule: '* * * * * *' }, createKindRegistry(), WINDOWS);
    expect(problems).toEqual([]);
    expect(rules.map((r) => r.id)).toEqual(DEFAULT_ALERT_RULES.map((r) => r.id));
  });

  it('should leave out, not fail on, a default rule that does not fit the configured windows', () => {
    const { rules, problems, skipped } = compileAlertRules({ enabled: true, defaultRules: true, rules: [], maxKeys: 10, silenceSchedule: '* * * * * *' }, createKindRegistry(), { defaultSizesMs: [10_000, 60_000], sizesMs: { bridge: [50] } });
    expect(problems).toEqual([]);
    expect(rules.map((r) => r.id)).not.toContain('bridge-truck-surge');
    expect(rules.map((r) => r.id)).toContain('heart-rate-spike');
    expect(skipped.join('\n')).toContain('alerts default rule "bridge-truck-surge".window: 60000 ms is not a window size of bridge');
  });
});

import { describe, expect, it } from 'vitest';
import { compileWhere } from '../../../gateway/delivery/where-filter.js';

const truck = { kind: 'bridge', vehicleClass: 'TRUCK', count: 25, lane: '2', deviceId: 'br-7' };

describe('where-filter', () => {
  it('compileWhere should evaluate the example of the README', () => {
    expect(compileWhere("kind = 'bridge' AND vehicleClass = 'TRUCK' AND count > 20")(truck)).toBe(true);
    expect(compileWhere("kind = 'bridge' AND vehicleClass = 'TRUCK' AND count > 30")(truck)).toBe(false);
  });

  it('compileWhere should bind AND tighter than OR, and NOT looser than a comparison (SQL precedence)', () => {
    expect(compileWhere("kind = 'x' AND count > 1 OR lane = '2'")(truck)).toBe(true);
    expect(compileWhere("kind = 'x' AND (count > 1 OR lane = '2')")(truck)).toBe(false);
    expect(compileWhere('NOT count = 3')(truck)).toBe(true);
  });

  it('compileWhere should treat absent fields and mixed types as unknown (three-valued logic)', () => {
    expect(compileWhere('nosuch = 1')(truck)).toBe(false);
    expect(compileWhere('NOT (nosuch = 1)')(truck)).toBe(false);
    expect(compileWhere('nosuch = 1 OR count = 25')(truck)).toBe(true);
    expect(compileWhere("count = '25'")(truck)).toBe(false);
    expect(compileWhere("NOT (count = '25')")(truck)).toBe(false);
    expect(compileWhere('nosuch IS NULL')(truck)).toBe(true);
    expect(compileWhere('count NOT IN (1, NULL)')(truck)).toBe(false);
  });

  it('compileWhere should support IN, BETWEEN, LIKE with escapes, and backquoted names', () => {
    expect(compileWhere("lane IN ('1', '2')")(truck)).toBe(true);
    expect(compileWhere('count BETWEEN 20 AND 25')(truck)).toBe(true);
    expect(compileWhere('count NOT BETWEEN 20 AND 25')(truck)).toBe(false);
    expect(compileWhere("deviceId LIKE 'br-_'")(truck)).toBe(true);
    expect(compileWhere("deviceId LIKE 'br%'")(truck)).toBe(true);
    expect(compileWhere("deviceId LIKE 'br\\%'")({ deviceId: 'br%' })).toBe(true);
    expect(compileWhere("deviceId LIKE 'br\\%'")(truck)).toBe(false);
    expect(compileWhere('`count` >= 25')(truck)).toBe(true);
  });

  it('compileWhere should refuse what is not a plain condition, naming it', () => {
    const refuse = (w: string) => () => compileWhere(w);
    expect(refuse('count + 1 > 2')).toThrow(/arithmetic/);
    expect(refuse('1 = 1; DROP TABLE x')).toThrow(/one expression/);
    expect(refuse("kind = 'a' UNION SELECT * FROM u")).toThrow(/second query/);
    expect(refuse('count > 1 ORDER BY count')).toThrow(/ORDER BY/);
    expect(refuse('sleep(10) = 0')).toThrow(/function/);
    expect(refuse('count = (SELECT 1)')).toThrow(/subquery/);
    expect(refuse('t.count = 1')).toThrow(/qualified/);
    expect(refuse("kind = 'a' AND")).toThrow(/syntax error at character/);
    expect(refuse('x'.repeat(2001))).toThrow(/longer than/);
    expect(refuse(`a IN (${Array.from({ length: 300 }, (_, i) => i).join(',')})`)).toThrow(/more than 256 terms/);
    expect(refuse(Array.from({ length: 100 }, (_, i) => `a = ${i}`).join(' OR '))).toThrow(/nested too deeply/);
    try {
      compileWhere('count >');
    } catch (err) {
      expect((err as { code: string }).code).toBe('GW_ERR_FILTER_INVALID');
    }
  });
});

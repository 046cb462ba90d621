/**
 * Tier direction of gateway/ (run by `npm test`, see scripts/test.sh; by hand:
 * `npx depcruise gateway --config .dependency-cruiser.cjs`).
 *
 * A tier imports only tiers further down the data flow of DESIGN.md:
 *   ingest -> pipeline -> log -> window -> sinks -> alerts -> delivery -> http
 * The pipeline is the log's reading side: it takes durable records (live from ingest, or read
 * back from the log in recovery) through the windows to the event bus and the sinks, so it sits
 * above the log it reads, as ingest sits above the log it writes. The data access tier, http, is
 * last: tiers register their routes on it. The one way up: a tier may import an
 * upstream tier's types.ts by type only, the shape of what flows into it (sinks store
 * WindowResults). jobs/ (scheduled work) may reach any
 * tier, and no tier reaches it. Shared by all and importing no tier: config/, kinds/, errors.ts,
 * clock.ts, metrics.ts, tls.ts, lifecycle.ts, backoff.ts, checkpoint/, wire/ (the formats served outside); events.ts names tier payloads, by type only.
 * main.ts and cli.ts (the composition roots) may import anything; nothing imports them. So may
 * sink-thread-main.ts, the sink thread's entry (it gives the sinks' thread ingest's payload decoder).
 * Type-only imports count: a cycle through types is still a cycle between modules.
 */
const TIERS = ['ingest', 'pipeline', 'log', 'window', 'sinks', 'alerts', 'delivery', 'http'];
const SHARED = '^gateway/(config/|kinds/|checkpoint/|wire/|backoff\\.ts$|lifecycle\\.ts$|errors\\.ts$|clock\\.ts$|metrics\\.ts$|tls\\.ts$)';
const ANY_TIER = `^gateway/(${[...TIERS, 'jobs', 'push-proxy'].join('|')})/`;

const upstream = TIERS.slice(1).flatMap((tier, i) => {
  const above = `^gateway/(${TIERS.slice(0, i + 1).join('|')})/`;
  return [
    {
      name: `${tier}-imports-upstream`,
      comment: `gateway/${tier}/ may import only tiers below it in the data flow, not ${TIERS.slice(0, i + 1).join(', ')}`,
      severity: 'error',
      from: { path: `^gateway/${tier}/` },
      to: { path: above, pathNot: '^gateway/[^/]+/types\\.ts$' },
    },
    {
      name: `${tier}-imports-upstream-types-by-type-only`,
      comment: 'A tier may know the shape of what flows into it (an upstream tier\'s types.ts), by type only',
      severity: 'error',
      from: { path: `^gateway/${tier}/` },
      to: { path: `${above}types\\.ts$`, dependencyTypesNot: ['type-only'] },
    },
  ];
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'Import cycles tie modules together; break them with a shared types module',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'log-and-window-import-nothing-from-ingest',
      comment: 'The log and the windows must not know the broker side',
      severity: 'error',
      from: { path: '^gateway/(log|window)/' },
      to: { path: '^gateway/ingest/' },
    },
    ...upstream,
    {
      name: 'nothing-imports-jobs',
      comment: 'Scheduled work is wired by main.ts only',
      severity: 'error',
      from: { path: '^gateway/', pathNot: '^gateway/(jobs/|main\\.ts$|cli\\.ts$)' },
      to: { path: '^gateway/jobs/' },
    },
    {
      name: 'shared-imports-no-tier',
      comment: 'config/, kinds/, errors, clock, metrics, tls and checkpoint/ are shared by every tier',
      severity: 'error',
      from: { path: SHARED },
      to: { path: ANY_TIER },
    },
    {
      name: 'events-import-tiers-by-type-only',
      comment: 'The event bus names the payloads of tiers; it must not load them',
      severity: 'error',
      from: { path: '^gateway/events\\.ts$' },
      to: { path: ANY_TIER, dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'push-proxy-imports-only-wire-config-errors-clock',
      comment: 'The push proxy is its own process and talks to the gateway over HTTP/SSE only',
      severity: 'error',
      from: { path: '^gateway/push-proxy/' },
      to: { path: '^gateway/', pathNot: '^gateway/(push-proxy/|wire/|config/|errors\\.ts$|clock\\.ts$|backoff\\.ts$|metrics\\.ts$)' },
    },
    {
      name: 'nothing-imports-the-composition-roots',
      severity: 'error',
      from: { path: '^gateway/', pathNot: '^gateway/cli\\.ts$' },
      to: { path: '^gateway/(main|cli|sink-thread-main)\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(node_modules|dist)/' },
  },
};

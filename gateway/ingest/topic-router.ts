/**
 * Which kind and device a publish's topic is: sensors/<kind>/<deviceId> first, then each
 * ingest.sources pattern in order (the first that matches wins), then any further matchers
 * (a protocol with its own topic tree, e.g. Sparkplug B, plugs in there). Null = bad_topic.
 */
import type { IngestConfig, SourceDefinition } from '../config/config.js';
import { GatewayError } from '../errors.js';
import type { KindRegistry } from '../kinds/registry.js';
import { compileSource, type TopicMatcher, type TopicRoute } from './source-mapping.js';
import { SensorTopicCache } from './topic.js';

export type { PayloadMapping, TopicMatcher, TopicRoute } from './source-mapping.js';

/** Parsed sensor topics kept (a device publishes on one topic); the memo is cleared when full. */
const TOPIC_CACHE_ENTRIES = 65_536;

export interface TopicRouter {
  route(topic: string): TopicRoute | null;
  /** What a bad_topic rejection tells the device. */
  readonly expected: string;
}

export interface TopicRouterOptions {
  readonly kinds: KindRegistry;
  readonly sources?: readonly SourceDefinition[];
  readonly limits?: Pick<IngestConfig, 'maxPastAgeMs' | 'maxFutureSkewMs'>;
  /** Consulted after the sources, in order. */
  readonly matchers?: readonly TopicMatcher[];
}

export function createTopicRouter(options: TopicRouterOptions): TopicRouter {
  const { kinds } = options;
  const sensors = new SensorTopicCache(TOPIC_CACHE_ENTRIES, (t) => kinds.has(t.kind));
  const limits = options.limits ?? { maxPastAgeMs: 7 * 86_400_000, maxFutureSkewMs: 300_000 };
  const matchers: TopicMatcher[] = (options.sources ?? []).map((s) => {
    const kind = kinds.get(s.kind);
    if (kind === undefined) throw new GatewayError('GW_ERR_CONFIG_INVALID', `ingest.sources: unknown kind "${s.kind}"`);
    return compileSource(s, kind, limits);
  });
  matchers.push(...(options.matchers ?? []));
  const patterns = (options.sources ?? []).map((s) => s.topic);
  return {
    expected: `expected sensors/<kind>/<deviceId>${patterns.length === 0 ? '' : ` or a topic of ingest.sources (${patterns.slice(0, 4).join(', ')}${patterns.length > 4 ? ', ...' : ''})`}`,
    route(topic) {
      const sensor = sensors.route(topic);
      if (sensor !== null) return sensor;
      for (const m of matchers) {
        const r = m.match(topic);
        if (r !== null) return r;
      }
      return null;
    },
  };
}

/**
 * Skips aedes' subscriber routing for publishes nobody can receive.
 *
 * Every publish a device sends goes through `broker.publish`: a packet copy, a series of steps,
 * a topic match against the live subscriptions (mqemitter's trie) and, at QoS 1, a second match
 * against the stored sessions' subscriptions (the persistence's trie), each splitting the topic
 * into words. On a gateway nobody subscribes to sensor readings in the common case: the matches
 * find nothing, and cost about a sixth of the main thread's time per reading at QoS 0.
 *
 * The gate mirrors every subscription filter the broker holds, live (`broker.subscribe` /
 * `unsubscribe`, which aedes calls exactly in pairs) and stored (the persistence's
 * `addSubscriptions` / `removeSubscriptions` / `cleanSubscriptions`, mirrored per client id), by
 * the filter's first topic level. A publish whose first level no filter names, while no filter
 * starts with a wildcard, has no subscriber: `broker.publish` then completes at once. It must also
 * not be retained (the retained store needs it), not a `$` topic (aedes' own `$SYS` listeners),
 * and nobody may listen to the broker's 'publish' event. Everything else takes aedes' own path.
 * The mirror may only over-count (a filter refused later still counts until removed): that costs
 * a routing, never a delivery.
 */
import type { Aedes, PublishPacket } from 'aedes';

type Done = (err?: Error) => void;

interface StoredSubscriptions {
  addSubscriptions(client: { id: string }, subs: readonly { topic: string }[]): Promise<void>;
  removeSubscriptions(client: { id: string }, topics: readonly string[]): Promise<void>;
  cleanSubscriptions(client: { id: string }): Promise<void>;
}

/** The first topic level of a filter or topic ('sensors' of 'sensors/hr/d1'). */
function firstLevel(topic: string): string {
  const slash = topic.indexOf('/');
  return slash < 0 ? topic : topic.slice(0, slash);
}

export class RouteGate {
  /** Filters counted by their literal first level. */
  private readonly byFirstLevel = new Map<string, number>();
  /** Filters whose first level is `+` or `#` (or a shared subscription's `$share`): they may match anything. */
  private wildcards = 0;
  private total = 0;
  /** The persistence's subscriptions, per client id (set semantics: re-adding a filter changes its QoS only). */
  private readonly stored = new Map<string, Set<string>>();
  routed = 0;
  skipped = 0;

  /** Whether some subscription may match `topic` (false only when none can). */
  mayMatch(topic: string): boolean {
    if (this.total === 0) return false;
    if (this.wildcards > 0) return true;
    return this.byFirstLevel.has(firstLevel(topic));
  }

  /** How many filters are mirrored (live plus stored); for tests and metrics. */
  get filters(): number {
    return this.total;
  }

  live(filter: string, delta: 1 | -1): void {
    this.adjust(filter, delta);
  }

  storedAdd(clientId: string, filters: readonly string[]): void {
    let set = this.stored.get(clientId);
    if (set === undefined) this.stored.set(clientId, (set = new Set()));
    for (const f of filters) {
      if (set.has(f)) continue;
      set.add(f);
      this.adjust(f, 1);
    }
  }

  storedRemove(clientId: string, filters: readonly string[]): void {
    const set = this.stored.get(clientId);
    if (set === undefined) return;
    for (const f of filters) if (set.delete(f)) this.adjust(f, -1);
    if (set.size === 0) this.stored.delete(clientId);
  }

  storedClean(clientId: string): void {
    const set = this.stored.get(clientId);
    if (set === undefined) return;
    for (const f of set) this.adjust(f, -1);
    this.stored.delete(clientId);
  }

  private adjust(filter: string, delta: 1 | -1): void {
    this.total += delta;
    const first = firstLevel(filter);
    if (first === '+' || first === '#' || first === '$share') {
      this.wildcards += delta;
      return;
    }
    const n = (this.byFirstLevel.get(first) ?? 0) + delta;
    if (n <= 0) this.byFirstLevel.delete(first);
    else this.byFirstLevel.set(first, n);
  }
}

/**
 * Installs the gate on `broker` (before any client connects): wraps its subscribe, unsubscribe
 * and publish, and its persistence's subscription store. The broker must not have a `published`
 * hook (its default does nothing), since a skipped publish does not call it.
 */
export function installRouteGate(broker: Aedes): RouteGate {
  const gate = new RouteGate();
  const b = broker as unknown as {
    subscribe(topic: string, func: unknown, done?: Done): void;
    unsubscribe(topic: string, func: unknown, done?: Done): void;
    publish(packet: PublishPacket, client: unknown, done?: Done): void;
    persistence: StoredSubscriptions;
    closed: boolean;
  };
  const subscribe = b.subscribe.bind(broker);
  const unsubscribe = b.unsubscribe.bind(broker);
  const publish = b.publish.bind(broker);
  b.subscribe = (topic, func, done) => {
    gate.live(topic, 1);
    subscribe(topic, func, done);
  };
  b.unsubscribe = (topic, func, done) => {
    gate.live(topic, -1);
    unsubscribe(topic, func, done);
  };
  b.publish = (packet, client, done) => {
    if (typeof client === 'function' || done === undefined) return publish(packet, client, done);
    const topic = packet.topic;
    if (packet.retain || b.closed || topic.charCodeAt(0) === 36 /* $ */ || gate.mayMatch(topic) || broker.listenerCount('publish') > 0) {
      gate.routed++;
      return publish(packet, client, done);
    }
    gate.skipped++;
    done();
  };

  const p = b.persistence;
  const add = p.addSubscriptions.bind(p);
  const remove = p.removeSubscriptions.bind(p);
  const clean = p.cleanSubscriptions.bind(p);
  // Mirrored synchronously, as the in-memory store changes synchronously when called: a removal
  // mirrored only after its promise would undo an add that came in between (an UNSUBSCRIBE and a
  // SUBSCRIBE of the same filter in one socket read) and leave a stored subscription unmirrored.
  p.addSubscriptions = (client, subs) => {
    gate.storedAdd(client.id, subs.map((s) => s.topic));
    return add(client, subs);
  };
  p.removeSubscriptions = (client, topics) => {
    gate.storedRemove(client.id, topics);
    return remove(client, topics);
  };
  p.cleanSubscriptions = (client) => {
    gate.storedClean(client.id);
    return clean(client);
  };
  return gate;
}

import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

/**
 * MQTT 3.1.1 publishing over one or more connections, with a bounded in-flight window per
 * connection: at QoS 1 a publish is in flight until its PUBACK, at QoS 0 until mqtt.js has written
 * it to the socket (that callback is deferred to 'drain' when the socket buffer is full, so the
 * window is also the backpressure). Publishes are pipelined, never awaited one by one.
 */
export interface ConnectionSpec {
  readonly clientId: string;
  readonly username?: string;
  readonly password?: string;
}

export interface PublisherOptions {
  readonly url: string;
  readonly qos: 0 | 1;
  readonly connections: readonly ConnectionSpec[];
  /** Maximum publishes in flight per connection. */
  readonly inflight: number;
  readonly connectTimeoutMs?: number;
  /** Delay between reconnect attempts after the first connect succeeded (default 1000). */
  readonly reconnectPeriodMs?: number;
  readonly keepaliveS?: number;
  /** Errors after the connection was established (e.g. a lost connection). */
  readonly onError?: (err: Error, connection: number) => void;
}

/** Called once per publish: without an error when acknowledged (QoS 1) or written (QoS 0). */
export type PublishDone = (err?: Error) => void;

interface Conn {
  readonly client: MqttClient;
  inFlight: number;
  /** Completions not yet called, so that close() can fail what never got an answer. */
  readonly pending: Set<PublishDone>;
  waiters: (() => void)[];
}

export class PublishError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'PublishError';
  }
}

export class Publisher {
  private drainWaiters: (() => void)[] = [];
  private closed = false;

  private constructor(
    private readonly conns: Conn[],
    private readonly options: PublisherOptions,
  ) {}

  /** Opens every connection; rejects (closing those opened) if any fails to connect. */
  static async connect(options: PublisherOptions): Promise<Publisher> {
    if (options.connections.length === 0) throw new RangeError('at least one connection is needed');
    const clients: MqttClient[] = [];
    try {
      await Promise.all(
        options.connections.map(async (spec, i) => {
          const client = await connectOne(options, spec);
          clients[i] = client;
        }),
      );
    } catch (err) {
      await Promise.all(clients.filter((c) => c !== undefined).map((c) => c.endAsync(true).catch(() => undefined)));
      throw err;
    }
    const conns: Conn[] = clients.map((client) => ({ client, inFlight: 0, pending: new Set(), waiters: [] }));
    const publisher = new Publisher(conns, options);
    conns.forEach((c, i) => {
      c.client.options.reconnectPeriod = options.reconnectPeriodMs ?? 1000;
      c.client.on('error', (err) => options.onError?.(err, i));
      c.client.on('offline', () => options.onError?.(new PublishError(`connection ${i} lost; reconnecting`, 'OFFLINE'), i));
    });
    return publisher;
  }

  get connectionCount(): number {
    return this.conns.length;
  }

  /** Publishes in flight over all connections. */
  get inFlight(): number {
    let n = 0;
    for (const c of this.conns) n += c.inFlight;
    return n;
  }

  hasCapacity(connection: number): boolean {
    return this.conns[connection]!.inFlight < this.options.inflight;
  }

  /** Resolves when `connection` has room in its window (or the publisher is closed). */
  waitForCapacity(connection: number): Promise<void> {
    const c = this.conns[connection]!;
    if (c.inFlight < this.options.inflight || this.closed) return Promise.resolve();
    return new Promise((resolve) => c.waiters.push(resolve));
  }

  publish(connection: number, topic: string, payload: Buffer, done: PublishDone): void {
    const c = this.conns[connection]!;
    if (this.closed) return done(new PublishError('publisher closed', 'CLOSED'));
    c.inFlight++;
    let called = false;
    const complete: PublishDone = (err) => {
      if (called) return;
      called = true;
      c.pending.delete(complete);
      c.inFlight--;
      done(err);
      if (c.waiters.length > 0 && c.inFlight < this.options.inflight) {
        const waiters = c.waiters;
        c.waiters = [];
        for (const w of waiters) w();
      }
      if (this.drainWaiters.length > 0 && this.inFlight === 0) {
        const waiters = this.drainWaiters;
        this.drainWaiters = [];
        for (const w of waiters) w();
      }
    };
    c.pending.add(complete);
    c.client.publish(topic, payload, { qos: this.options.qos }, (err) => complete(err ?? undefined));
  }

  /** Waits until nothing is in flight; false if `timeoutMs` passed first. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.drainWaiters = this.drainWaiters.filter((w) => w !== onDrain);
        resolve(false);
      }, timeoutMs);
      const onDrain = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      this.drainWaiters.push(onDrain);
    });
  }

  /** Closes every connection; publishes still without an answer fail with code UNACKNOWLEDGED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.conns.map((c) => c.client.endAsync(this.inFlight > 0).catch(() => undefined)));
    for (const c of this.conns) {
      for (const p of [...c.pending]) p(new PublishError('connection closed before the publish was acknowledged', 'UNACKNOWLEDGED'));
      for (const w of c.waiters.splice(0)) w();
    }
    for (const w of this.drainWaiters.splice(0)) w();
  }
}

function connectOne(options: PublisherOptions, spec: ConnectionSpec): Promise<MqttClient> {
  const opts: IClientOptions = {
    protocolVersion: 4,
    clean: true,
    clientId: spec.clientId,
    keepalive: options.keepaliveS ?? 30,
    connectTimeout: options.connectTimeoutMs ?? 10_000,
    // No retries until the first CONNACK: a wrong URL or credentials fail fast with a clear error.
    reconnectPeriod: 0,
    // QoS 0 while disconnected fails at once instead of piling up in memory.
    queueQoSZero: false,
    resubscribe: false,
  };
  if (spec.username !== undefined) opts.username = spec.username;
  if (spec.password !== undefined) opts.password = spec.password;
  return new Promise((resolve, reject) => {
    let client: MqttClient;
    try {
      client = mqtt.connect(options.url, opts);
    } catch (err) {
      reject(new PublishError(`cannot connect to ${options.url}: ${(err as Error).message}`, 'CONNECT_FAILED', { cause: err }));
      return;
    }
    const fail = (why: string, cause?: unknown): void => {
      cleanup();
      client.end(true);
      reject(new PublishError(`cannot connect to ${options.url} as ${spec.username ?? '(anonymous)'}: ${why}`, 'CONNECT_FAILED', { cause }));
    };
    const onConnect = (): void => {
      cleanup();
      resolve(client);
    };
    const onError = (err: Error): void => fail(err.message, err);
    const onClose = (): void => fail('connection closed before CONNACK');
    const cleanup = (): void => {
      client.off('connect', onConnect);
      client.off('error', onError);
      client.off('close', onClose);
    };
    client.once('connect', onConnect);
    client.once('error', onError);
    client.once('close', onClose);
  });
}

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';

/**
 * The console's files: `console/` of the repository, found from the sources (gateway/http/) and
 * from the build (dist/gateway/http/). Its charting library is copied into console/vendor/ by
 * `npm run build:console` (scripts/build-console.ts), never fetched from elsewhere.
 */
export function consoleDir(): string {
  for (const relative of ['../../console/', '../../../console/']) {
    const dir = fileURLToPath(new URL(relative, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  return fileURLToPath(new URL('../../console/', import.meta.url));
}

/** The routes the console may use, as this gateway has them: the page asks instead of probing for 404s. */
function features(app: FastifyInstance): Record<string, unknown> {
  const has = (method: 'GET' | 'POST', url: string): boolean => app.hasRoute({ method, url });
  return {
    devices: has('GET', '/v1/devices'),
    // The hub serves every stream (alerts, windows, the static ones) on one route.
    streams: { windows: has('GET', '/v1/streams/windows') || has('GET', '/v1/streams/:name'), alerts: has('GET', '/v1/streams/alerts') || has('GET', '/v1/streams/:name') },
    alerts: has('GET', '/v1/alerts'),
    alertsHistory: has('GET', '/v1/alerts/history'),
    sql: has('POST', '/v1/query') ? 'sql' : null,
  };
}

export interface ConsoleRoutesOptions {
  readonly root?: string;
  /** The language of POST /v1/query ('sql' | 'influxql'); null when there is none. */
  readonly sqlLanguage?: 'sql' | 'influxql' | null;
}

/** GET / and its files, and GET /features.json, as a fastify plugin for createHttpServer({ plugins }). */
export function consoleRoutes(options: ConsoleRoutesOptions = {}): FastifyPluginAsync {
  const root = options.root ?? consoleDir();
  return async (app) => {
    // The server's routes as a whole: a plugin sees its own encapsulated instance.
    const server = app;
    server.get('/features.json', async (_req, reply) => {
      const f = features(server);
      if (f['sql'] !== null && options.sqlLanguage !== undefined) f['sql'] = options.sqlLanguage;
      return reply.header('cache-control', 'no-store').send(f);
    });
    if (!existsSync(root)) {
      app.get('/', async (_req, reply) => reply.code(404).type('text/plain; charset=utf-8').send('the console files are missing (console/ next to gateway/)'));
      return;
    }
    if (!existsSync(`${root}vendor/uPlot.iife.min.js`)) {
      app.log.warn({ dir: `${root}vendor` }, 'the console has no chart library; run npm run build:console (its page works without charts)');
    }
    await app.register(fastifyStatic, {
      root,
      prefix: '/',
      index: ['index.html'],
      // Small files that change with each build: revalidated instead of cached blindly.
      cacheControl: true,
      maxAge: 0,
      decorateReply: false,
    });
  };
}

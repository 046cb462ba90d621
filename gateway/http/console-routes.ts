import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';

/**
 * The console's files: `console/` of the repository (next to gateway/ in the sources and in
 * dist/). Its charting library is copied into console/vendor/ by `npm run build:console`
 * (scripts/build-console.ts), never fetched from elsewhere.
 */
export function consoleDir(): string {
  return fileURLToPath(new URL('../../console/', import.meta.url));
}

/** GET / and its files, as a fastify plugin for createHttpServer({ plugins }). */
export function consoleRoutes(root: string = consoleDir()): FastifyPluginAsync {
  return async (app) => {
    if (!existsSync(root)) {
      app.get('/', async (_req, reply) => reply.code(404).type('text/plain; charset=utf-8').send('the console files are missing; run npm run build:console'));
      return;
    }
    await app.register(fastifyStatic, {
      root,
      prefix: '/',
      index: ['index.html'],
      // Small files that change with each build: revalidate instead of caching blindly.
      cacheControl: true,
      maxAge: 0,
      decorateReply: false,
    });
  };
}

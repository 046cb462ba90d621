/**
 * `npm run build:console`: copies the console's charting library (uPlot, from node_modules) into
 * console/vendor/, where the gateway serves it with the rest of console/. No CDN: the page loads
 * nothing from anywhere but the gateway. `npm run build` and `npm run demo` run it too.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const FILES = ['uPlot.iife.min.js', 'uPlot.min.css'] as const;

export function buildConsole(repoRoot = fileURLToPath(new URL('..', import.meta.url))): string {
  const uplotDist = join(dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist');
  const vendor = join(repoRoot, 'console', 'vendor');
  mkdirSync(vendor, { recursive: true });
  for (const file of FILES) copyFileSync(join(uplotDist, file), join(vendor, file));
  return vendor;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(`console: uPlot copied to ${buildConsole()}\n`);
}

/**
 * Plain-JavaScript build of gateway/ and bench/ for the benchmark's child processes.
 *
 * tsx compiles with esbuild's keepNames, which wraps every function created at run time in a
 * `__name(fn, "name")` call (an Object.defineProperty): closures created per message then cost
 * measurably more than in the compiled gateway (`npm run build` + node), and its loader thread
 * adds ~40 MB of RSS. So every measured process runs from this build instead: each .ts file
 * transpiled on its own by TypeScript (no type check; `npm run typecheck` does that), with a
 * source map beside it, under bench/.build/ (git-ignored), where node_modules still resolves.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import ts from 'typescript';
import { ROOT } from './procs.js';

export const BUILD_DIR = join(ROOT, 'bench', '.build');
const SOURCE_DIRS = ['gateway', 'bench'];
const SKIP = new Set([join(ROOT, 'bench', '.build'), join(ROOT, 'bench', 'results')]);

function tsFiles(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (SKIP.has(p) || name === 'node_modules') continue;
    if (statSync(p).isDirectory()) tsFiles(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

export function buildForBench(): { files: number; ms: number } {
  const t0 = performance.now();
  rmSync(BUILD_DIR, { recursive: true, force: true });
  const files = SOURCE_DIRS.flatMap((d) => tsFiles(join(ROOT, d), []));
  for (const file of files) {
    const rel = relative(ROOT, file);
    const outFile = join(BUILD_DIR, rel.replace(/\.ts$/, '.js'));
    const out = ts.transpileModule(readFileSync(file, 'utf8'), {
      fileName: rel,
      compilerOptions: {
        module: ts.ModuleKind.ES2022,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: true,
        sourceMap: true,
      },
    });
    mkdirSync(dirname(outFile), { recursive: true });
    const mapName = `${outFile.slice(outFile.lastIndexOf('/') + 1)}.map`;
    const js = out.outputText.replace(/\/\/# sourceMappingURL=.*$/m, '') + `//# sourceMappingURL=${mapName}\n`;
    writeFileSync(outFile, js);
    if (out.sourceMapText !== undefined) {
      const map = JSON.parse(out.sourceMapText) as { sources: string[] };
      map.sources = [rel]; // repository-relative: what the profile summary prints
      writeFileSync(`${outFile}.map`, JSON.stringify(map));
    }
  }
  // The decoder finds proto/ relative to its own file.
  mkdirSync(join(BUILD_DIR, 'proto'), { recursive: true });
  for (const f of readdirSync(join(ROOT, 'proto'))) copyFileSync(join(ROOT, 'proto', f), join(BUILD_DIR, 'proto', f));
  // ...and the built-in kinds (kinds/builtin.yaml) likewise.
  mkdirSync(join(BUILD_DIR, 'kinds'), { recursive: true });
  for (const f of readdirSync(join(ROOT, 'kinds'))) copyFileSync(join(ROOT, 'kinds', f), join(BUILD_DIR, 'kinds', f));
  return { files: files.length, ms: Math.round(performance.now() - t0) };
}

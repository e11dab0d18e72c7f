/**
 * Module load hook for the server children of bench/http.ts: compiles the TypeScript of this
 * repository (tollgate's packages/*\/src and the bench's server code) the way a build does.
 *
 * Why not tsx alone: tsx compiles with esbuild's `keepNames`, which wraps every named function
 * expression in `__name(fn, 'name')`, an `Object.defineProperty` call each time the expression is
 * evaluated. A closure created per request (`headersSent: () => ...`, a `.map((p) => ...)` callback)
 * then costs several microseconds that the built packages (tsdown) and the peers (plain JavaScript
 * from node_modules) never pay. tsx still resolves (tsconfig paths, `.js` to `.ts`); this hook only
 * takes over loading `.ts` files outside node_modules, with TypeScript's `transpileModule`.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

type TypeScript = typeof import('typescript');
let ts: TypeScript | undefined;

interface LoadContext {
  format?: string;
}
interface LoadResult {
  format: string;
  source: string;
  shortCircuit?: boolean;
}
type NextLoad = (url: string, context: LoadContext) => Promise<LoadResult>;

export async function load(url: string, context: LoadContext, nextLoad: NextLoad): Promise<LoadResult> {
  if (!url.startsWith('file:') || !url.endsWith('.ts') || url.includes('/node_modules/')) {
    return nextLoad(url, context);
  }
  ts ??= createRequire(import.meta.url)('typescript') as TypeScript;
  const file = fileURLToPath(url);
  const { outputText } = ts.transpileModule(await readFile(file, 'utf8'), {
    fileName: file,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      verbatimModuleSyntax: false,
      isolatedModules: true,
      sourceMap: false,
    },
  });
  return { format: 'module', source: outputText, shortCircuit: true };
}

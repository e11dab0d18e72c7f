// Each package's main entry is its documented API (issue 10): every name it exports carries a doc
// comment where it is declared, and the README's "API" list names exactly those exports.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const ENTRIES = ['core', 'redis', 'express', 'koa', 'client', 'otel'] as const;
const entry = (dir: string) => resolve(root, 'packages', dir, 'src/index.ts');

function publicNames(): Record<string, { name: string; documented: boolean }[]> {
  const config = ts.getParsedCommandLineOfConfigFile(
    resolve(root, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!config) throw new Error('tsconfig.json did not parse');
  const program = ts.createProgram(ENTRIES.map(entry), { ...config.options, noEmit: true });
  const checker = program.getTypeChecker();
  const result: Record<string, { name: string; documented: boolean }[]> = {};
  for (const dir of ENTRIES) {
    const file = program.getSourceFile(entry(dir));
    const module = file && checker.getSymbolAtLocation(file);
    if (!module) throw new Error(`no module symbol for ${dir}`);
    result[dir] = checker.getExportsOfModule(module).map((symbol) => {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      return { name: symbol.name, documented: target.getDocumentationComment(checker).length > 0 };
    });
  }
  return result;
}

/** The names in backticks of the README's "API" list for one package. */
function readmeNames(pkg: string): string[] {
  const readme = readFileSync(resolve(root, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## API\n');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const line = section.split('\n').find((l) => l.startsWith(`- \`@tollgate/${pkg}\``));
  if (line === undefined) throw new Error(`README's API section has no line for @tollgate/${pkg}`);
  return [...line.slice(line.indexOf(':')).matchAll(/`([A-Za-z_]+)`/g)].map((m) => m[1]!).sort();
}

describe('public API', () => {
  const names = publicNames();

  it.each(ENTRIES)('@tollgate/%s documents every name it exports', (dir) => {
    expect(names[dir]!.filter((n) => !n.documented).map((n) => n.name)).toEqual([]);
  });

  it.each(ENTRIES)("@tollgate/%s exports exactly the names the README's API list gives", (dir) => {
    expect(readmeNames(dir)).toEqual(names[dir]!.map((n) => n.name).sort());
  });

  it('keeps internals out of @tollgate/core', () => {
    const core = names.core!.map((n) => n.name);
    for (const internal of ['STEPS', 'REGISTRY', 'evaluate', 'resolvePolicySet', 'configError', 'Warner'])
      expect(core).not.toContain(internal);
  });
});

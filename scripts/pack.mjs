// `pnpm pack:all`: builds every package and packs each into one folder (default `packs/`) as
// `tollgate-<dir>.tgz`, the tarballs an app installs with npm before the packages are published:
//   npm install express /path/to/tollgate/packs/tollgate-core.tgz /path/to/tollgate/packs/tollgate-express.tgz
// `pnpm pack` (not `npm pack`) because it rewrites the `workspace:^` ranges to real versions
// (`@tollgate/core: ^0.1.0`); that range is satisfied by the core tarball installed beside it.
// Options: --out DIR (where to put them), --no-build (the packages' dist/ is already fresh).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const root = resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: { out: { type: 'string', default: join(root, 'packs') }, 'no-build': { type: 'boolean' } },
});
const out = resolve(values.out);
const pnpm = (args, cwd) => execFileSync('pnpm', args, { cwd, stdio: ['ignore', 'ignore', 'inherit'] });

if (!values['no-build']) pnpm(['build'], root);
mkdirSync(out, { recursive: true });
const packed = [];
for (const dir of readdirSync(join(root, 'packages')).sort()) {
  const pkgDir = join(root, 'packages', dir);
  const manifest = join(pkgDir, 'package.json');
  if (!existsSync(manifest) || JSON.parse(readFileSync(manifest, 'utf8')).private) continue;
  if (!existsSync(join(pkgDir, 'dist'))) throw new Error(`packages/${dir}/dist is missing: build first.`);
  const tarball = join(out, `tollgate-${dir}.tgz`);
  rmSync(tarball, { force: true });
  pnpm(['pack', '--out', tarball], pkgDir);
  packed.push(tarball);
}
const shown = packed.map((file) => relative(process.cwd(), file) || file);
console.log(`Packed ${packed.length} packages into ${relative(process.cwd(), out) || '.'}:`);
for (const file of shown) console.log(`  ${file}`);

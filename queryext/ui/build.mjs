// Bundles src/ into dist/ (embedded in the binary by queryext/ui.go). Deterministic: the same
// sources and package-lock.json give the same bytes (no timestamps, no hashes in names, no
// source maps), which `make ui-check` relies on.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
mkdirSync('dist/assets', { recursive: true });
await build({
  entryPoints: { app: 'src/main.ts' },
  outdir: 'dist/assets',
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  legalComments: 'eof',
  charset: 'utf8',
  logLevel: 'warning',
});
copyFileSync('index.html', 'dist/index.html');

// Bundles bench/bench.ts and everything it imports into one ESM file for a machine without
// node_modules (scripts/gpu-machine/prepare.sh). `.wgsl?raw` imports become string constants, as
// bin/wgsl-hook.mjs makes them under Node and Vite in the browser. The only thing the bundle loads at
// run time besides Node's built-ins is Dawn's addon: the `webgpu` package requires
// `<bundle folder>/dist/linux-x64/dawn.node` (its index.js resolves that path from import.meta.url),
// so prepare.sh puts dawn.node there.
import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** `import x from './a.wgsl?raw'` → the file's text. */
const wgslRaw = {
  name: 'wgsl-raw',
  setup(b) {
    b.onResolve({ filter: /\.wgsl\?raw$/ }, (args) => ({
      path: resolve(args.resolveDir, args.path.slice(0, -'?raw'.length)),
      namespace: 'wgsl-raw',
    }));
    b.onLoad({ filter: /.*/, namespace: 'wgsl-raw' }, async (args) => ({
      contents: await readFile(args.path, 'utf8'),
      loader: 'text',
      watchFiles: [args.path],
    }));
  },
};

/**
 * Writes `outfile` (one ESM file, Node 20) from `entry` (relative to the repo root). Returns
 * esbuild's metafile: the inputs bundled and the imports left to run time.
 */
export async function bundleBench({ outfile, entry = 'bench/bench.ts', minify = false } = {}) {
  const result = await build({
    absWorkingDir: REPO_ROOT,
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify,
    metafile: true,
    logLevel: 'warning',
    // Bundled CommonJS modules (debug, ...) call require(): give the ESM bundle one.
    banner: { js: "import { createRequire as __bundleCreateRequire } from 'node:module'; const require = __bundleCreateRequire(import.meta.url);" },
    plugins: [wgslRaw],
  });
  return result.metafile;
}

/** Imports the bundle leaves to run time (`import`/`require` of anything not bundled). */
export function externalImports(metafile) {
  return [...new Set(Object.values(metafile.outputs).flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path)))].sort();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outfile = process.argv[2];
  if (!outfile) {
    console.error('usage: node scripts/gpu-machine/bundle.mjs OUTFILE');
    process.exit(2);
  }
  const meta = await bundleBench({ outfile: resolve(outfile) });
  console.log(`bundled ${Object.keys(meta.inputs).length} modules into ${outfile}; run-time imports: ${externalImports(meta).join(', ')}`);
}

// Types of bundle.mjs for the TypeScript tests that call it.
import type { Metafile } from 'esbuild';

export const REPO_ROOT: string;
export function bundleBench(opts?: { outfile: string; entry?: string; minify?: boolean }): Promise<Metafile>;
export function externalImports(metafile: Metafile): string[];

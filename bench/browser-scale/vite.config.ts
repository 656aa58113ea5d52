/**
 * Build of the browser-scale measurement page (bench/browser-scale.ts runs `vite build` and
 * `vite preview` with this config): a page and a module worker that hosts the studio's own engine
 * worker logic (src/ui/worker/host.ts). Not part of the studio's build.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  worker: { format: 'es' },
  build: { emptyOutDir: true, target: 'es2022' },
  logLevel: 'warn',
});

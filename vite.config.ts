/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  plugins: [react()],
  server: { port: 5173, strictPort: false },
  worker: { format: 'es' },
  // Two pages: the studio, and the page the Hub's OAuth sign-in returns to (src/ui/publish/oauth.ts).
  build: { rolldownOptions: { input: { main: 'index.html', oauth: 'oauth-callback.html' } } },
  test: {
    include: ['src/**/*.test.ts', 'src/**/*.test.tsx', 'tests/**/*.test.ts'],
    setupFiles: ['tests/setup.ts'],
    // Software WebGPU (SwiftShader) is slow and single-device: run GPU test files one at a time.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});

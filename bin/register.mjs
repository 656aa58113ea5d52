// Lets Node run this repo's TypeScript sources: tsx for .ts, and `.wgsl?raw` imports as text (as Vite
// does in the browser and in tests). The Vulkan driver is chosen at run time (src/gpu/node-gpu.ts:
// the system's, else SwiftShader), so nothing is forced here.
import { register } from 'node:module';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Vulkan drivers complain on stderr without a private runtime dir (headless machines lack one).
if (!process.env.XDG_RUNTIME_DIR) {
  const dir = join(tmpdir(), `merge-studio-runtime-${process.getuid?.() ?? 'user'}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = dir;
}
register('./wgsl-hook.mjs', import.meta.url);
const { register: registerTsx } = await import('tsx/esm/api');
registerTsx();

// Lets Node run this repo's TypeScript sources: tsx for .ts, and `.wgsl?raw` imports as text (as Vite
// does in the browser and in tests). Also points Dawn at SwiftShader's Vulkan driver when none is set.
import { register } from 'node:module';

const swiftshader = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES) process.env.VK_ICD_FILENAMES = swiftshader;
register('./wgsl-hook.mjs', import.meta.url);
const { register: registerTsx } = await import('tsx/esm/api');
registerTsx();

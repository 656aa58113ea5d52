// Node's WebGPU (Dawn) needs a Vulkan driver; Debian's chromium ships SwiftShader's.
const swiftshader = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES) process.env.VK_ICD_FILENAMES = swiftshader;

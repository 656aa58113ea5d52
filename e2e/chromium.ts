/**
 * How the tests and benches start Debian's Chromium: WebGPU on (SwiftShader when there is no GPU),
 * nothing fetched from the network. One list, used by playwright.config.ts and bench/browser-scale.ts.
 */
export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-angle=swiftshader',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

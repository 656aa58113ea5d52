/** Shared between the global setup and the tests: where the test Hub is, and its gated repo's token. */
export const HUB_ENV = 'MERGE_STUDIO_TEST_HUB';
export const GATED_TOKEN = 'hf_e2e_gated_token';

export function hubUrl(): string {
  const url = process.env[HUB_ENV];
  if (!url) throw new Error(`${HUB_ENV} is not set: the global setup (e2e/global-setup.ts) starts the test Hub`);
  return url;
}

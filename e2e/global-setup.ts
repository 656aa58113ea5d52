/**
 * Starts a local Hub-compatible server (src/cli/hub-server.ts) over a temporary root holding the
 * golden checkpoints as Hub repos, plus a gated repo and an incompatible one for the error tests.
 * Its URL reaches the tests through the environment.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHubServer } from '../src/cli/hub-server.ts';
import { GATED_TOKEN, HUB_ENV } from './hub.ts';

const GOLDEN = fileURLToPath(new URL('../tests/fixtures/golden/models/llama-bf16', import.meta.url));

/** A safetensors file of zeros for the given tensors (written here, independent of the project's writer). */
function zerosSafetensors(tensors: Record<string, { dtype: 'BF16' | 'F32'; shape: number[] }>): Buffer {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'F32' ? 4 : 2);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const out = Buffer.alloc(8 + json.length + offset);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  out.write(json, 8, 'utf8');
  return out;
}

export default async function globalSetup() {
  const root = mkdtempSync(join(tmpdir(), 'merge-studio-e2e-hub-'));
  for (const name of ['base', 'expert1', 'expert2', 'expert3']) {
    cpSync(join(GOLDEN, name), join(root, 'org', name), { recursive: true });
  }
  // Gated: files need `Authorization: Bearer <token>`.
  cpSync(join(GOLDEN, 'expert3'), join(root, 'org', 'gated'), { recursive: true });
  writeFileSync(join(root, 'org', 'gated', '.gated'), GATED_TOKEN);
  // Incompatible: another architecture with other shapes (hidden 32) and fewer layers.
  mkdirSync(join(root, 'org', 'tiny-gpt'), { recursive: true });
  writeFileSync(
    join(root, 'org', 'tiny-gpt', 'model.safetensors'),
    zerosSafetensors({
      'model.embed_tokens.weight': { dtype: 'BF16', shape: [259, 32] },
      'model.layers.0.self_attn.q_proj.weight': { dtype: 'BF16', shape: [32, 32] },
      'model.norm.weight': { dtype: 'BF16', shape: [32] },
    }),
  );
  writeFileSync(join(root, 'org', 'tiny-gpt', 'config.json'), JSON.stringify({ model_type: 'gpt2', num_hidden_layers: 1 }));

  const server = await startHubServer({ root, port: 0 });
  process.env[HUB_ENV] = server.url;
  return async () => {
    await server.close();
    rmSync(root, { recursive: true, force: true });
  };
}

/** Settings: backend, Hub endpoint and token, shard size, seed, output name; and the GPU's status. */
import type { StateCreator } from 'zustand/vanilla';
import { DEFAULT_HUB_URL } from '../../core/sources/hub.ts';
import type { SettingsSlice, StudioDeps, StudioState } from './types.ts';

export function createSettingsSlice(deps: StudioDeps): StateCreator<StudioState, [], [], SettingsSlice> {
  return (set, get) => ({
    backend: 'gpu',
    gpu: { status: 'probing' },
    hubUrl: DEFAULT_HUB_URL,
    hubToken: '',
    shardSize: '5GB',
    seed: 0,
    outputName: 'merged-model',

    setBackend: (backend) => set({ backend }),
    setHubUrl: (hubUrl) => set({ hubUrl: hubUrl.trim().replace(/\/+$/, '') }),
    setHubToken: (hubToken) => set({ hubToken }),
    setShardSize: (shardSize) => set({ shardSize }),
    setSeed: (seed) => set({ seed: Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff ? seed : get().seed }),
    setOutputName: (outputName) => set({ outputName }),

    async probeGpu() {
      set({ gpu: { status: 'probing' } });
      const gpu = await deps.engine.probeGpu();
      set({ gpu });
      // Without WebGPU the CPU backend is the one that works; the GPU choice comes back if it does.
      if (gpu.status === 'unavailable') set({ backend: 'cpu' });
    },
  });
}

/** The merge job: pick where it goes, run it in the engine worker, follow progress, cancel. */
import type { StateCreator } from 'zustand/vanilla';
import { parseByteSize } from '../../core/units.ts';
import { recipeProblem } from '../recipe-model.ts';
import { mergeRefs } from './analysis-slice.ts';
import type { MergeHandle } from '../worker/client.ts';
import { toErrorInfo, type OutputTarget, type SourceProgressInfo } from '../worker/protocol.ts';
import type { JobSlice, StudioDeps, StudioState } from './types.ts';

/** Folder and archive names: letters, digits, `._-`; no leading dot. */
export function outputNameProblem(name: string): string | null {
  if (name.trim() === '') return 'give the output a name';
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(name)) return `"${name}" may only use letters, digits, ".", "_" and "-" (and not start with ".")`;
  return null;
}

export function createJobSlice(deps: StudioDeps): StateCreator<StudioState, [], [], JobSlice> {
  let running: MergeHandle | null = null;
  const now = deps.now ?? (() => Date.now());

  return (set, get) => {
    const fail = (name: string, message: string) => set({ job: { status: 'failed', error: { name, message } } });

    /** A model's report of the running job; its counts never go down (a late or repeated report is ignored). */
    const noteTransfer = (jobId: number, p: SourceProgressInfo) => {
      const job = get().job;
      if (job.status !== 'running' || job.jobId !== jobId) return;
      const prev = get().transfers[p.ref];
      const next =
        prev === undefined
          ? { ...p }
          : { ...p, bytesReceived: Math.max(prev.bytesReceived, p.bytesReceived), cachedBytes: Math.max(prev.cachedBytes, p.cachedBytes), done: prev.done || p.done };
      next.bytesExpected = Math.max(next.bytesExpected, next.bytesReceived);
      set({ transfers: { ...get().transfers, [p.ref]: next } });
    };
    return {
      job: { status: 'idle' },
      transfers: {},

      async startMerge(destination) {
        const state = get();
        if (state.job.status === 'running' || state.job.status === 'picking') return;
        const problem = recipeProblem(state.recipe);
        if (problem) return fail('RecipeError', problem.message);
        const refs = mergeRefs(state);
        for (const ref of refs) {
          const model = state.shelf.find((m) => m.ref === ref);
          if (model?.load.status !== 'ready') {
            const why = !model ? 'is not on the shelf' : model.load.status === 'loading' ? 'is still loading' : model.load.status === 'missing' ? 'has no files yet: drop its folder' : 'failed to load';
            return fail('MergeInputError', `model ${ref} ${why}`);
          }
        }
        if (state.compat.status === 'done' && !state.compat.report.ok) {
          return fail('MergeInputError', `the models are not compatible: ${state.compat.report.problems[0]}`);
        }
        const nameProblem = outputNameProblem(state.outputName);
        if (nameProblem) return fail('OutputFolderError', `output name: ${nameProblem}`);
        let maxShardBytes: number;
        try {
          maxShardBytes = parseByteSize(state.shardSize, 'shard size');
        } catch (err) {
          const e = toErrorInfo(err);
          return fail(e.name, e.message);
        }

        let output: OutputTarget;
        if (destination === 'folder') {
          set({ job: { status: 'picking' } });
          let parent: FileSystemDirectoryHandle | null;
          try {
            parent = await deps.pickDirectory();
          } catch (err) {
            if ((err as { name?: string })?.name === 'AbortError') return set({ job: { status: 'idle' } });
            const e = toErrorInfo(err);
            return fail(e.name, e.message);
          }
          if (!parent) {
            return fail('OutputFolderError', 'this browser cannot write to folders (no File System Access API): use "Download .zip" instead');
          }
          output = { kind: 'directory', parent, folderName: state.outputName };
        } else {
          output = { kind: 'download', folderName: state.outputName };
        }

        const handle = deps.engine.merge(
          { recipe: get().recipe, backend: get().backend, output, seed: get().seed, maxShardBytes },
          (progress) => {
            const job = get().job;
            if (job.status === 'running' && job.jobId === handle.jobId) set({ job: { ...job, progress } });
          },
          (transfer) => noteTransfer(handle.jobId, transfer),
        );
        running = handle;
        set({ job: { status: 'running', jobId: handle.jobId, startedAt: now(), progress: null, cancelling: false, destination }, transfers: {} });
        try {
          const outcome = await handle.outcome;
          if (outcome.status === 'done') {
            if (outcome.download) deps.download(outcome.download.name, outcome.download.blob);
            const folder = output.kind === 'directory' ? { parent: output.parent, name: output.folderName } : undefined;
            set({ job: { status: 'done', result: outcome.result, folder } });
          } else {
            set({ job: { status: 'cancelled' } });
          }
        } catch (err) {
          set({ job: { status: 'failed', error: toErrorInfo(err) } });
          // A GPU that failed mid-merge may be gone: ask again so the status and backend choice are current.
          if (toErrorInfo(err).name.startsWith('Gpu')) void get().probeGpu();
        } finally {
          if (running === handle) running = null;
          // The merge filled (or evicted from) the range cache.
          void get().refreshRangeCache();
        }
      },

      cancelMerge() {
        const job = get().job;
        if (job.status !== 'running' || !running) return;
        running.cancel();
        set({ job: { ...job, cancelling: true } });
      },

      dismissJob() {
        if (get().job.status !== 'running' && get().job.status !== 'picking') set({ job: { status: 'idle' } });
      },
    };
  };
}

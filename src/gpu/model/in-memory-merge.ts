/**
 * A merge kept in memory for scoring: the engine writes the merged model (weights in the recipe's
 * output dtype, config.json and tokenizer files from the base) into a MemoryOutputFolder, which is
 * opened as a ModelSource like any folder. Nothing touches the disk.
 */
import { openModel } from '../../core/safetensors/model.ts';
import type { ModelSource } from '../../core/source.ts';
import { MemoryOutputFolder, memoryFileTree } from '../../core/sources/memory.ts';
import { runMerge, type MergeJob } from '../engine.ts';

export async function mergeInMemory(job: Omit<MergeJob, 'output'>, id = 'merge'): Promise<ModelSource> {
  const output = new MemoryOutputFolder(id);
  await runMerge({ ...job, output });
  return openModel(memoryFileTree(id, Object.fromEntries(output.files)), { id });
}

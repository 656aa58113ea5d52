/**
 * Errors shown in the page: a short title saying what kind of problem it is, and the error's own
 * message, which already names the model, file, tensor or parameter and the reason.
 */
import type { ErrorInfo } from './worker/protocol.ts';

const TITLES: Readonly<Record<string, string>> = {
  HubAccessError: 'This repository needs access',
  HubNotFoundError: 'Not found on the Hub',
  HubRefError: 'Not a Hub model id',
  HubApiError: 'The Hub gave an unexpected answer',
  HubNetworkError: 'The Hub could not be reached',
  HubTimeoutError: 'The Hub did not answer in time',
  HubUnavailableError: 'The Hub could not be reached',
  HubFormatError: 'This repository has no usable weights',
  SafetensorsError: 'This is not a valid safetensors file',
  ModelError: 'This model cannot be opened',
  RecipeError: 'The recipe has a problem',
  RecipeLinkError: 'The link holds no readable recipe',
  ModelRefError: 'Not a model reference',
  MergeInputError: 'These models cannot be merged as asked',
  MethodError: 'The merge method refused a tensor',
  LayerIndexError: 'A tensor does not fit the layer count',
  OutputFolderError: 'The output cannot be written',
  SafetensorsWriteError: 'The output cannot be written',
  ZipError: 'The download cannot be built',
  GpuUnavailableError: 'WebGPU is not available',
  GpuNoAdapterError: 'WebGPU found no GPU',
  GpuLimitError: 'This GPU is too limited',
  GpuDeviceLostError: 'The GPU stopped',
  GpuUncapturedError: 'The GPU reported an error',
  GpuShaderError: 'A GPU program failed to compile',
  GpuOutOfMemoryError: 'The GPU ran out of memory',
  WorkerError: 'The engine stopped',
  ModelTooLargeError: 'Too large to run in this tab',
  MergeTooLargeError: 'Too large to merge in this tab',
  ModelConfigError: 'This model cannot be run',
  ModelWeightsError: 'This model cannot be run',
  TokenizerError: 'This model has no usable tokenizer',
  TaskSetError: 'The task set has a problem',
  LoraExtractError: 'This merge cannot be exported as a LoRA',
  NotAllowedError: 'Permission was refused',
  SecurityError: 'The browser refused access',
  QuotaExceededError: 'The disk is full',
};

export interface ErrorInWords {
  title: string;
  text: string;
}

export function errorInWords(error: ErrorInfo): ErrorInWords {
  return { title: TITLES[error.name] ?? 'Something went wrong', text: error.message };
}

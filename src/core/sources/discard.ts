/** An OutputFolder that keeps nothing: for benchmarks and memory tests that time or measure a merge, not its files. */
import type { ByteSink, OutputFolder } from '../safetensors/writer.ts';

/** Counts the bytes written to it and drops them. */
export class DiscardOutputFolder implements OutputFolder {
  readonly name = 'discard';
  /** Bytes written so far, every file together. */
  bytes = 0;
  async create(): Promise<ByteSink> {
    return { write: async (c: Uint8Array) => void (this.bytes += c.byteLength), close: async () => undefined, abort: async () => undefined };
  }
  async commit() {}
  async abort() {}
}

import { describe, expect, it } from 'vitest';
import { assertNever, isFromWorker, isToWorker, ProtocolError, toErrorInfo, type FromWorker } from './protocol.ts';

describe('worker protocol envelope', () => {
  it('accepts the kinds of each direction only', () => {
    expect(isFromWorker({ kind: 'merge-progress', jobId: 1, progress: {} })).toBe(true);
    expect(isFromWorker({ kind: 'open', requestId: 1 })).toBe(false);
    expect(isToWorker({ kind: 'open', requestId: 1 })).toBe(true);
    expect(isToWorker({ kind: 'opened', requestId: 1 })).toBe(false);
    for (const junk of [null, undefined, 'merge', 3, {}, { type: 'merge' }]) {
      expect(isFromWorker(junk)).toBe(false);
      expect(isToWorker(junk)).toBe(false);
    }
  });

  it('knows the range cache and per-model progress kinds, each in its own direction', () => {
    for (const kind of ['cache-info', 'set-cache-limit', 'clear-cache']) {
      expect(isToWorker({ kind, requestId: 1 })).toBe(true);
      expect(isFromWorker({ kind, requestId: 1 })).toBe(false);
    }
    for (const kind of ['cache-status', 'source-progress']) {
      expect(isFromWorker({ kind, requestId: 1 })).toBe(true);
      expect(isToWorker({ kind, requestId: 1 })).toBe(false);
    }
  });

  it('messages survive structured cloning (what postMessage does)', () => {
    const msg: FromWorker = {
      kind: 'merge-done',
      jobId: 3,
      result: { files: ['model.safetensors'], tensors: 39, bytes: 100, seconds: 1.5, destination: 'd', backend: 'CPU' },
      download: null,
    };
    expect(structuredClone(msg)).toEqual(msg);
  });

  it('errors cross as class name and message', () => {
    class HubAccessError extends Error {
      constructor() {
        super('org/x: this repo needs access');
        this.name = 'HubAccessError';
      }
    }
    expect(toErrorInfo(new HubAccessError())).toEqual({ name: 'HubAccessError', message: 'org/x: this repo needs access' });
    expect(toErrorInfo(Object.assign(new Error('x'), { name: '' }))).toEqual({ name: 'Error', message: 'x' });
    expect(toErrorInfo({ name: 'AbortError', message: 'aborted' })).toEqual({ name: 'AbortError', message: 'aborted' });
    expect(toErrorInfo('plain')).toEqual({ name: 'Error', message: 'plain' });
  });

  it('an unhandled kind is a ProtocolError naming it', () => {
    expect(() => assertNever({ kind: 'mystery' } as never, 'message')).toThrow(ProtocolError);
    expect(() => assertNever({ kind: 'mystery' } as never, 'message')).toThrow(/unexpected message: "mystery"/);
  });
});

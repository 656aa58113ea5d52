/**
 * What a Hub model's tree has delivered, from the Hub source's progress reports (cumulative bytes per
 * file, and whether each report's bytes came from the range cache). The worker keeps one meter per
 * opened Hub model: opening reports header bytes through it, and a merge reports the tensor bytes it
 * reads, counted from where the meter stood when the merge started.
 */
import type { HubProgress } from '../../core/sources/hub.ts';

export interface MeterReading {
  /** Bytes delivered, from the network and from the cache. */
  received: number;
  /** Of those, bytes that came from the range cache. */
  cached: number;
}

export class TransferMeter {
  readonly #files = new Map<string, { received: number; size: number }>();
  readonly #listeners = new Set<() => void>();
  #received = 0;
  #cached = 0;
  #rate = 0;

  /** Feed one Hub progress report. */
  add(p: HubProgress): void {
    const file = this.#files.get(p.file) ?? { received: 0, size: p.bytesExpected };
    // A file's count never goes down; a report that does not add bytes adds nothing here.
    const added = Math.max(0, p.bytesReceived - file.received);
    file.received += added;
    file.size = p.bytesExpected;
    this.#files.set(p.file, file);
    this.#received += added;
    if (p.fromCache) this.#cached += added;
    this.#rate = p.rate;
    for (const listener of this.#listeners) listener();
  }

  reading(): MeterReading {
    return { received: this.#received, cached: this.#cached };
  }

  /** Network bytes per second as the Hub source last measured it (over its last couple of seconds). */
  get rate(): number {
    return this.#rate;
  }

  /** Bytes delivered of the files read so far, and those files' sizes (an open's progress). */
  filesProgress(): { bytesReceived: number; bytesExpected: number } {
    let bytesReceived = 0;
    let bytesExpected = 0;
    for (const f of this.#files.values()) {
      bytesReceived += f.received;
      bytesExpected += f.size;
    }
    return { bytesReceived, bytesExpected };
  }

  /** Called after each report; returns the unsubscribe. */
  listen(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/** Bytes delivered since `start` (a reading taken when a merge began). */
export function since(meter: TransferMeter, start: MeterReading): MeterReading {
  const now = meter.reading();
  return { received: now.received - start.received, cached: now.cached - start.cached };
}

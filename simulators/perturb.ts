import type { Random } from './random.js';

/**
 * Transport faults injected per device, after the model: with probability `outOfOrder` a reading
 * is held back and sent after the next 1-3 readings (a swap or a short delay); with probability
 * `duplicates` a reading is sent a second time (same seq, same content) right away or after up
 * to 2 further readings. Deterministic for a given random stream.
 */
export interface PerturbOptions {
  readonly outOfOrder: number;
  readonly duplicates: number;
}

interface Held<R> {
  readonly reading: R;
  after: number;
  readonly duplicate: boolean;
}

export interface Emitted<R> {
  readonly reading: R;
  readonly duplicate: boolean;
}

export class Perturber<R> {
  private held: Held<R>[] = [];
  outOfOrderInjected = 0;
  duplicatesInjected = 0;

  constructor(
    private readonly rng: Random,
    private readonly options: PerturbOptions,
  ) {}

  get active(): boolean {
    return this.options.outOfOrder > 0 || this.options.duplicates > 0;
  }

  /** Takes the next reading in order; returns what goes out now, in sending order. */
  push(reading: R): Emitted<R>[] {
    if (!this.active) return [{ reading, duplicate: false }];
    const out: Emitted<R>[] = [];
    const due: Held<R>[] = [];
    for (const h of this.held) h.after--;
    if (this.rng.chance(this.options.outOfOrder)) {
      this.outOfOrderInjected++;
      this.held.push({ reading, after: this.rng.int(1, 3), duplicate: false });
    } else this.emit(reading, false, out);
    const keep: Held<R>[] = [];
    for (const h of this.held) (h.after <= 0 ? due : keep).push(h);
    this.held = keep;
    for (const h of due) this.emit(h.reading, h.duplicate, out);
    return out;
  }

  /** Everything still held, at the end of the stream. */
  flush(): Emitted<R>[] {
    const out: Emitted<R>[] = [];
    const held = this.held;
    this.held = [];
    for (const h of held) out.push({ reading: h.reading, duplicate: h.duplicate });
    return out;
  }

  private emit(reading: R, duplicate: boolean, out: Emitted<R>[]): void {
    out.push({ reading, duplicate });
    if (duplicate || !this.rng.chance(this.options.duplicates)) return;
    this.duplicatesInjected++;
    const after = this.rng.int(0, 2);
    if (after === 0) out.push({ reading, duplicate: true });
    else this.held.push({ reading, after, duplicate: true });
  }
}

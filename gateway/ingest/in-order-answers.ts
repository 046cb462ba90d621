/**
 * Answers released in the order they were taken: the broker path's per-connection order of
 * publish answers (mqtt-ingest.ts), so a publish answered at once does not overtake one waiting
 * for its fdatasync [MQTT-4.6.0-2, MQTT-4.6.0-6].
 */
export type Answer = (error?: Error | null) => void;

interface AnswerSlot {
  done: Answer | null;
  error: Error | null | undefined;
  ready: boolean;
}

/** Answers released in the order they were taken: slot k waits for slots 0..k-1 (each answers once). */
export class InOrderAnswers {
  private slots: AnswerSlot[] = [];
  private head = 0;

  /** Slots kept (released ones not yet dropped included): bounded by about twice those pending. */
  get retained(): number {
    return this.slots.length;
  }

  /** Whether an answer taken is not released yet. */
  get busy(): boolean {
    return this.head < this.slots.length;
  }

  /** The answer of the next publish: calling it releases `done` once every earlier one is released. */
  next(done: Answer): Answer {
    const slot: AnswerSlot = { done, error: undefined, ready: false };
    this.slots.push(slot);
    return (err) => {
      if (slot.ready) return;
      slot.error = err;
      slot.ready = true;
      this.release();
    };
  }

  private release(): void {
    // A released answer may make aedes take the next packets at once (re-entering next() and
    // this): the head moves before each call, and each pass reads the current slots.
    while (this.head < this.slots.length && this.slots[this.head]!.ready) {
      const slot = this.slots[this.head++]!;
      const done = slot.done!;
      slot.done = null;
      done(slot.error);
    }
    // A client pipelining steadily may never have all its answers released at once: the
    // released slots are dropped as they pile up, not only when the queue empties.
    if (this.head === this.slots.length) {
      this.slots = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.head = 0;
    }
  }
}

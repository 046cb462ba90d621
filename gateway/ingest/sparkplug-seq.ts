/**
 * From a Sparkplug B edge node's wrapping `seq` (0-255, one counter for the node and all its
 * devices, restarted at every NBIRTH) to the monotonic sequence the gateway's dedup and gap
 * accounting take (gateway/pipeline/sequence-tracker.ts).
 *
 * - Each `seq` is unwrapped against the highest seen (serial-number arithmetic, RFC 1982): a step
 *   of 1..127 is forward, 128..255 backward (a resend or a late message) when such a message was
 *   seen, else forward. 128 lost messages in a row are therefore read as fewer.
 * - Only messages that carry readings take a number in the monotonic sequence, and each message
 *   lost in between takes one too: the tracker counts a lost message as a gap, while a message
 *   without readings (say, an NDATA of unmapped metrics) leaves none. A lost message that arrives
 *   later takes its reserved number back (a gap fill); a resend of one already seen gets its
 *   number again (a duplicate).
 * - Each NBIRTH starts a new session with its own stream (the reading's `seqStream`, named by the
 *   birth's bdSeq and arrival time), so the tracker's state of the session before never meets it.
 */
const RING = 256;

export type SeqOutcome =
  /** The monotonic number for this message's readings. */
  | { readonly seq: number }
  /** Seen before in this session (a resend) without readings, or older than the session: nothing to do. */
  | { readonly seq: null };

export class SparkplugSeq {
  /** Highest unwrapped seq seen; -1 before the first message after the birth. */
  private high = -1;
  /** Monotonic numbers handed out (to messages with readings, and to lost messages). */
  private count = 0;
  /** Per raw seq: the unwrapped seq last stored there (-1: none) and its monotonic number (0: none yet). */
  private readonly ringU = new Float64Array(RING).fill(-1);
  private readonly ringM = new Float64Array(RING);
  /** Messages lost (skipped seqs) since the birth. */
  lost = 0;

  /** The birth's own seq (0 by the specification) opens the session. */
  constructor(birthSeq: number) {
    this.see(birthSeq);
  }

  /** Records a message without readings (a birth or a death carrying none); returns false for a resend. */
  see(raw: number): boolean {
    const u = this.unwrap(raw);
    if (u <= this.high) return false;
    this.advance(u);
    this.ringU[u % RING] = u;
    this.ringM[u % RING] = 0;
    return true;
  }

  /** The monotonic number of a message with readings. */
  number(raw: number): SeqOutcome {
    const u = this.unwrap(raw);
    if (u <= this.high) {
      const slot = u % RING;
      if (this.ringU[slot] !== u) return { seq: null };
      if (this.ringM[slot] === 0) this.ringM[slot] = ++this.count; // seen without readings: now it has some
      return { seq: this.ringM[slot]! };
    }
    this.advance(u);
    const m = ++this.count;
    this.ringU[u % RING] = u;
    this.ringM[u % RING] = m;
    return { seq: m };
  }

  private advance(u: number): void {
    // Every seq skipped is a lost message: it reserves a number, so that the tracker sees the gap.
    for (let s = this.high + 1; s < u; s++) {
      if (this.high < 0) break;
      this.ringU[s % RING] = s;
      this.ringM[s % RING] = ++this.count;
      this.lost++;
    }
    this.high = u;
  }

  private unwrap(raw: number): number {
    if (this.high < 0) return raw;
    const delta = (raw - (this.high % RING) + RING) % RING;
    if (delta === 0) return this.high;
    if (delta < RING / 2) return this.high + delta;
    const back = this.high - (RING - delta);
    // A backward step only to a message of this session that was seen (or lost): else it is a long jump forward.
    if (back >= 0 && this.ringU[back % RING] === back) return back;
    return this.high + delta;
  }
}

import type { VirtualClock } from "../base/index.js";
import { TokenBucket, Wakeup } from "./shaper.js";

/** What the arbiter needs of a VF. */
export interface ArbitratedSender {
  /** True while the sender is below its min_tx_rate guarantee. */
  readonly belowMinRate: boolean;
  /** Runs the sender's transmit loop (which asks `admit` before every frame). */
  pump(): void;
}

/**
 * The port's transmit arbiter: the scheduling element above the VFs' vports (mlx5's eswitch
 * QoS, where min_tx_rate is a bandwidth share and max_tx_rate a ceiling). It caps the VFs'
 * combined transmit at the port's line rate with a token bucket, and when that is exhausted
 * serves waiting VFs in two classes: first those below their min_tx_rate guarantee, then the
 * rest, round robin within a class. Without any min_tx_rate on the port there is nothing to
 * guarantee and the arbiter stays out of the path (`active` false), which keeps the
 * uncontended fast path free of it.
 */
export class TxArbiter {
  readonly #line: TokenBucket;
  readonly #wakeup: Wakeup;
  readonly #waiting: ArbitratedSender[] = [];
  readonly #withMin = new Set<ArbitratedSender>();
  #serving: ArbitratedSender | null = null;

  constructor(clock: VirtualClock, lineMbps: number) {
    this.#line = new TokenBucket(clock);
    this.#line.setRateMbps(lineMbps);
    this.#wakeup = new Wakeup(clock, () => this.#serve());
  }

  get active(): boolean {
    return this.#withMin.size > 0;
  }

  /** Records whether a sender has a min_tx_rate; the arbiter is active while any has. */
  setMinRate(s: ArbitratedSender, hasMin: boolean): void {
    const was = this.active;
    if (hasMin) this.#withMin.add(s);
    else this.#withMin.delete(s);
    if (was && !this.active) {
      // Nothing to arbitrate any more: let everyone waiting go.
      const w = this.#waiting.splice(0);
      this.#wakeup.cancel();
      for (const x of w) x.pump();
    }
  }

  /** Forgets a sender (VF disabled). */
  remove(s: ArbitratedSender): void {
    const i = this.#waiting.indexOf(s);
    if (i >= 0) this.#waiting.splice(i, 1);
    this.setMinRate(s, false);
  }

  /** May `s` send a frame now? When not, it is queued and pumped again later. */
  admit(s: ArbitratedSender): boolean {
    if (!this.active) return true;
    if (this.#serving === s) {
      if (this.#line.ready()) return true;
      this.#enqueue(s);
      return false;
    }
    if (this.#waiting.length === 0 && this.#serving === null && this.#line.ready()) return true;
    this.#enqueue(s);
    this.#wakeup.schedule(this.#line.ready() ? 0n : this.#line.nsUntilReady());
    return false;
  }

  /** Charges a transmitted frame to the line. */
  consume(bytes: number): void {
    if (this.active) this.#line.consume(bytes);
  }

  #enqueue(s: ArbitratedSender): void {
    if (!this.#waiting.includes(s)) this.#waiting.push(s);
  }

  #serve(): void {
    while (this.#waiting.length > 0 && this.#line.ready()) {
      let i = this.#waiting.findIndex((w) => w.belowMinRate);
      if (i < 0) i = 0;
      const s = this.#waiting.splice(i, 1)[0]!;
      this.#serving = s;
      try {
        s.pump();
      } finally {
        this.#serving = null;
      }
    }
    if (this.#waiting.length > 0) this.#wakeup.schedule(this.#line.nsUntilReady());
  }
}

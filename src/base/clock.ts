/**
 * Virtual time (DESIGN.md §3.4). Nothing in the emulated world reads the wall clock: time is
 * an input, advanced explicitly, and timers fire in deadline order, ties broken by insertion
 * order, so a scenario gives the same result every run.
 */
export interface Clock {
  /** Nanoseconds since the world started. */
  now(): bigint;
}

interface Timer {
  readonly at: bigint;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

export interface TimerHandle {
  cancel(): void;
}

export class VirtualClock implements Clock {
  #now = 0n;
  #seq = 0;
  #timers: Timer[] = [];

  now(): bigint {
    return this.#now;
  }

  /** Schedules fn at now + delayNs. */
  after(delayNs: bigint, fn: () => void): TimerHandle {
    if (delayNs < 0n) throw new RangeError("delay must not be negative");
    const t: Timer = { at: this.#now + delayNs, seq: this.#seq++, fn, cancelled: false };
    // Keep the list sorted; timer counts are small, so insertion beats a heap in clarity.
    let i = this.#timers.length;
    while (i > 0) {
      const prev = this.#timers[i - 1];
      if (prev === undefined || prev.at < t.at || (prev.at === t.at && prev.seq < t.seq)) break;
      i--;
    }
    this.#timers.splice(i, 0, t);
    return { cancel: () => { t.cancelled = true; } };
  }

  /** Advances time by deltaNs, running every timer that falls due, in order. */
  advance(deltaNs: bigint): void {
    if (deltaNs < 0n) throw new RangeError("time does not run backwards");
    this.advanceTo(this.#now + deltaNs);
  }

  advanceTo(target: bigint): void {
    if (target < this.#now) throw new RangeError("time does not run backwards");
    for (;;) {
      const next = this.#timers[0];
      if (next === undefined || next.at > target) break;
      this.#timers.shift();
      this.#now = next.at;
      if (!next.cancelled) next.fn();
    }
    this.#now = target;
  }

  /** Number of timers still pending (cancelled ones excluded). */
  pending(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }
}

export const NS_PER_US = 1_000n;
export const NS_PER_MS = 1_000_000n;
export const NS_PER_S = 1_000_000_000n;

import { VmmError } from "./errors.js";

/**
 * A pool of backends (vhost-vdpa handles on host VFs, in vpf) that one or more VMs draw from.
 *
 * The paper hands a VM a fixed pool at start. vpf goes further (docs/vmm.md "Pools and quotas"):
 * a pool may be shared by several VMs, each under its own quota, and a VM takes backends only
 * when its guest sets VF Enable, so an idle VM holds no host VF. `take` is all-or-nothing, which
 * is what lets VF Enable either fully succeed or change nothing.
 *
 * Backends are handed out lowest index first and returned to their original place, so the
 * assignment is deterministic for a given sequence of operations.
 */
export class BackendPool<B> {
  readonly name: string;
  readonly #backends: readonly B[];
  /** holder per backend index; undefined = free. */
  readonly #holder: (string | undefined)[];
  readonly #index = new Map<B, number>();
  readonly #held = new Map<string, number>();

  constructor(name: string, backends: readonly B[]) {
    this.name = name;
    this.#backends = [...backends];
    this.#holder = this.#backends.map(() => undefined);
    this.#backends.forEach((b, i) => {
      if (this.#index.has(b)) throw new VmmError("VMM_BAD_ARGUMENT", `pool ${name}: a backend is listed twice`, { details: { index: i } });
      this.#index.set(b, i);
    });
  }

  /** How many backends the pool has in all. */
  get capacity(): number {
    return this.#backends.length;
  }

  /** How many are free right now. */
  get available(): number {
    let n = 0;
    for (const h of this.#holder) if (h === undefined) n++;
    return n;
  }

  /** How many `holder` holds. */
  heldBy(holder: string): number {
    return this.#held.get(holder) ?? 0;
  }

  /** Holder name → count, for status displays. */
  holdings(): Map<string, number> {
    return new Map(this.#held);
  }

  /** Who holds `backend`, if anyone. */
  holderOf(backend: B): string | undefined {
    const i = this.#index.get(backend);
    return i === undefined ? undefined : this.#holder[i];
  }

  /**
   * Takes `n` backends for `holder`, all or none. `quota` bounds what the holder may hold in all
   * (VMM_QUOTA_EXCEEDED); too few free backends give VMM_POOL_EXHAUSTED. Nothing changes on error.
   */
  take(holder: string, n: number, quota = Infinity): B[] {
    if (!Number.isInteger(n) || n < 0) throw new VmmError("VMM_BAD_ARGUMENT", `cannot take ${n} backends`, { details: { n } });
    const have = this.heldBy(holder);
    if (have + n > quota) {
      throw new VmmError("VMM_QUOTA_EXCEEDED", `${holder} holds ${have} of pool ${this.name} and may hold ${quota}; ${n} more refused`, {
        details: { pool: this.name, holder, have, n, quota },
      });
    }
    const free: number[] = [];
    for (let i = 0; i < this.#holder.length && free.length < n; i++) if (this.#holder[i] === undefined) free.push(i);
    if (free.length < n) {
      throw new VmmError("VMM_POOL_EXHAUSTED", `pool ${this.name} has ${free.length} free backends, ${holder} needs ${n}`, {
        details: { pool: this.name, holder, free: free.length, n },
      });
    }
    for (const i of free) this.#holder[i] = holder;
    if (n > 0) this.#held.set(holder, have + n);
    return free.map((i) => this.#backends[i]!);
  }

  /** Returns backends `holder` took. All must be held by it (VMM_NOT_HELD, and nothing changes). */
  give(holder: string, backends: readonly B[]): void {
    const idx: number[] = [];
    for (const b of backends) {
      const i = this.#index.get(b);
      if (i === undefined || this.#holder[i] !== holder || idx.includes(i)) {
        throw new VmmError("VMM_NOT_HELD", `${holder} returns a backend it does not hold from pool ${this.name}`, { details: { pool: this.name, holder } });
      }
      idx.push(i);
    }
    for (const i of idx) this.#holder[i] = undefined;
    const left = this.heldBy(holder) - idx.length;
    if (left === 0) this.#held.delete(holder);
    else this.#held.set(holder, left);
  }
}

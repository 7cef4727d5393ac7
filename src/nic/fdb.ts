/**
 * The eswitch's forwarding table: (domain, MAC) → port index, as an open-addressing hash table
 * over typed arrays. A MAC is 48 bits, more than V8 keeps as a small integer, so a Map keyed by
 * MAC numbers hashes heap doubles on every frame; this table splits the key into two int32
 * words (domain << 16 | MAC bits 47..32, and MAC bits 31..0) and never allocates on lookup.
 */
export class FdbTable {
  #hi: Int32Array;
  #lo: Int32Array;
  #val: Int32Array; // port index + 1; 0 = empty slot
  #mask: number;
  #size = 0;

  constructor(capacity = 64) {
    let cap = 16;
    while (cap < capacity * 2) cap *= 2;
    this.#hi = new Int32Array(cap);
    this.#lo = new Int32Array(cap);
    this.#val = new Int32Array(cap);
    this.#mask = cap - 1;
  }

  get size(): number {
    return this.#size;
  }

  clear(): void {
    this.#val.fill(0);
    this.#size = 0;
  }

  static #hash(hi: number, lo: number): number {
    let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 15;
    return h;
  }

  /** Sets (domain, MAC bits hi16/lo32) → port index; a later set of the same key wins. */
  set(domain: number, macHi16: number, macLo32: number, port: number): void {
    if (this.#size * 2 >= this.#val.length) this.#grow();
    const hi = (domain << 16) | macHi16;
    const lo = macLo32 | 0;
    const mask = this.#mask;
    for (let i = FdbTable.#hash(hi, lo) & mask; ; i = (i + 1) & mask) {
      const v = this.#val[i]!;
      if (v === 0) {
        this.#hi[i] = hi;
        this.#lo[i] = lo;
        this.#val[i] = port + 1;
        this.#size++;
        return;
      }
      if (this.#hi[i] === hi && this.#lo[i] === lo) {
        this.#val[i] = port + 1;
        return;
      }
    }
  }

  /** Port index for the key, or -1. */
  get(domain: number, macHi16: number, macLo32: number): number {
    const hi = (domain << 16) | macHi16;
    const lo = macLo32 | 0;
    const mask = this.#mask;
    const vals = this.#val;
    for (let i = FdbTable.#hash(hi, lo) & mask; ; i = (i + 1) & mask) {
      const v = vals[i]!;
      if (v === 0) return -1;
      if (this.#hi[i] === hi && this.#lo[i] === lo) return v - 1;
    }
  }

  #grow(): void {
    const oh = this.#hi, ol = this.#lo, ov = this.#val;
    const cap = ov.length * 2;
    this.#hi = new Int32Array(cap);
    this.#lo = new Int32Array(cap);
    this.#val = new Int32Array(cap);
    this.#mask = cap - 1;
    this.#size = 0;
    for (let i = 0; i < ov.length; i++) {
      const v = ov[i]!;
      if (v === 0) continue;
      const hi = oh[i]!;
      this.set(hi >>> 16, hi & 0xffff, ol[i]!, v - 1);
    }
  }
}

/**
 * A small first-fit allocator over a window of guest RAM, for the model guest and tests to carve
 * out rings and buffers (what a guest kernel's page allocator and dma_alloc_coherent do for a real
 * driver). Freed blocks go back on an address-ordered free list and merge with their neighbours.
 */
import { GuestMemoryError, type GuestMemory } from "./guest-memory.js";

interface Block {
  addr: number;
  size: number;
}

export class GuestAllocator {
  readonly base: number;
  readonly size: number;
  #free: Block[];
  readonly #used = new Map<number, number>(); // addr -> size

  /**
   * Manages [base, base+size). When memory is given, the whole window must lie inside it, so every
   * address handed out is valid guest RAM.
   */
  constructor(memory: GuestMemory | undefined, base: number, size: number) {
    if (!Number.isSafeInteger(base) || base < 0 || !Number.isSafeInteger(size) || size <= 0) {
      throw new GuestMemoryError("MEM_BAD_LAYOUT", `invalid allocator window base=${base} size=${size}`, { details: { base, size } });
    }
    if (memory !== undefined && !memory.contains(base, size)) {
      throw new GuestMemoryError("MEM_OUT_OF_RANGE", `allocator window 0x${base.toString(16)}+${size} is outside guest memory`, {
        details: { addr: base, len: size },
      });
    }
    this.base = base;
    this.size = size;
    this.#free = [{ addr: base, size }];
  }

  /** Allocates size bytes aligned to align (a power of two); throws MEM_ALLOC_FAILED when full. */
  alloc(size: number, align = 8): number {
    if (!Number.isSafeInteger(size) || size <= 0 || !Number.isSafeInteger(align) || align <= 0 || (align & (align - 1)) !== 0) {
      throw new GuestMemoryError("MEM_ALLOC_FAILED", `invalid allocation size=${size} align=${align}`, { details: { size, align } });
    }
    for (let i = 0; i < this.#free.length; i++) {
      const b = this.#free[i];
      if (b === undefined) continue;
      const start = Math.ceil(b.addr / align) * align;
      const pad = start - b.addr;
      if (pad + size > b.size) continue;
      const tail = b.size - pad - size;
      const replacement: Block[] = [];
      if (pad > 0) replacement.push({ addr: b.addr, size: pad });
      if (tail > 0) replacement.push({ addr: start + size, size: tail });
      this.#free.splice(i, 1, ...replacement);
      this.#used.set(start, size);
      return start;
    }
    throw new GuestMemoryError("MEM_ALLOC_FAILED", `no ${size}-byte block aligned to ${align} left`, { details: { size, align } });
  }

  /** Returns a block from alloc(); throws MEM_BAD_FREE for anything else. */
  free(addr: number): void {
    const size = this.#used.get(addr);
    if (size === undefined) {
      throw new GuestMemoryError("MEM_BAD_FREE", `0x${addr.toString(16)} was not allocated here`, { details: { addr } });
    }
    this.#used.delete(addr);
    let i = 0;
    while (i < this.#free.length && (this.#free[i]?.addr ?? Infinity) < addr) i++;
    this.#free.splice(i, 0, { addr, size });
    // Merge with the following, then the preceding block.
    const cur = this.#free[i];
    const next = this.#free[i + 1];
    if (cur !== undefined && next !== undefined && cur.addr + cur.size === next.addr) {
      cur.size += next.size;
      this.#free.splice(i + 1, 1);
    }
    const prev = this.#free[i - 1];
    if (cur !== undefined && prev !== undefined && prev.addr + prev.size === cur.addr) {
      prev.size += cur.size;
      this.#free.splice(i, 1);
    }
  }

  /** Bytes currently free (including alignment holes). */
  get freeBytes(): number {
    let n = 0;
    for (const b of this.#free) n += b.size;
    return n;
  }

  /** Number of live allocations. */
  get liveAllocations(): number {
    return this.#used.size;
  }
}

/**
 * Driver side of a split virtqueue (virtio 1.x §2.7), laid out by the guest in its own memory:
 * descriptor table (16-byte entries), available ring, used ring. The driver adds chains, publishes
 * them in the available ring, kicks through the notify address, and reaps used entries.
 */
import type { GuestMemory } from "../memory/index.js";
import type { GuestAllocator } from "../memory/index.js";
import type { PciPlatform } from "../pci/platform.js";

const VIRTQ_DESC_F_NEXT = 1;
const VIRTQ_DESC_F_WRITE = 2;
const VIRTQ_USED_F_NO_NOTIFY = 1;
const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;

/** vring_need_event (virtio 1.x §2.7.10): has `newIdx` moved past `event` since `oldIdx`? */
export function needEvent(event: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - event - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}

/** Where DMA memory comes from: the guest allocator or a per-device arena. */
export interface DmaAlloc {
  alloc(size: number, align: number): number;
  free(addr: number): void;
}

/**
 * A per-device block of guest RAM carved by a bump pointer (what devm/dma pools give a Linux
 * driver): one allocation per device instead of a dozen keeps probing 255 VFs fast. Requests
 * beyond the block go to the parent allocator; `release` returns everything.
 */
export class DmaArena implements DmaAlloc {
  readonly base: number;
  #next: number;
  readonly #end: number;
  readonly #overflow: number[] = [];

  constructor(
    readonly parent: GuestAllocator,
    size: number,
  ) {
    this.base = parent.alloc(size, 4096);
    this.#next = this.base;
    this.#end = this.base + size;
  }

  alloc(size: number, align: number): number {
    const a = Math.ceil(this.#next / align) * align;
    if (a + size <= this.#end) {
      this.#next = a + size;
      return a;
    }
    const p = this.parent.alloc(size, align);
    this.#overflow.push(p);
    return p;
  }

  /** Individual frees are no-ops; the arena goes back whole. */
  free(_addr: number): void {
    // Memory returns with release().
  }

  release(): void {
    for (const p of this.#overflow) this.parent.free(p);
    this.#overflow.length = 0;
    this.parent.free(this.base);
  }
}

export interface VqBuffer {
  readonly addr: number;
  readonly len: number;
  /** Device-writable (the device fills it). */
  readonly write: boolean;
}

export interface VqUsed<T> {
  readonly token: T;
  readonly len: number;
}

export class SplitVirtqueue<T> {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
  #freeHead = 0;
  #numFree: number;
  #availIdx = 0;
  /** Available index at the last notification decision (for EVENT_IDX). */
  #kickedIdx = 0;
  #lastUsed = 0;
  /** VIRTIO_RING_F_EVENT_IDX negotiated: avail_event/used_event replace the flags. */
  eventIdx = false;
  /** The driver reaps this queue itself and wants no used-buffer interrupts (TX). */
  #quiet = false;
  readonly #tokens: (T | undefined)[];
  readonly #chainLen: number[];
  kicks = 0;
  /** Used entries naming a descriptor head the driver does not own. */
  bogusUsed = 0;

  constructor(
    readonly index: number,
    readonly size: number,
    readonly memory: GuestMemory,
    readonly alloc: DmaAlloc,
    readonly platform: PciPlatform,
    public notifyAddr: number,
  ) {
    // Alignments from virtio 1.x §2.7: descriptor table 16, available ring 2, used ring 4.
    this.desc = alloc.alloc(16 * size, 16);
    this.avail = alloc.alloc(6 + 2 * size, 2);
    this.used = alloc.alloc(6 + 8 * size, 4);
    memory.fill(this.desc, 16 * size);
    memory.fill(this.avail, 6 + 2 * size);
    memory.fill(this.used, 6 + 8 * size);
    for (let i = 0; i < size; i++) memory.writeU16(this.desc + i * 16 + 14, (i + 1) % size);
    this.#numFree = size;
    this.#tokens = new Array<T | undefined>(size).fill(undefined);
    this.#chainLen = new Array<number>(size).fill(0);
  }

  get numFree(): number {
    return this.#numFree;
  }

  /** Adds one chain; returns false when the ring has too few free descriptors. */
  add(bufs: readonly VqBuffer[], token: T): boolean {
    const n = bufs.length;
    if (n === 0 || n > this.#numFree) return false;
    const m = this.memory;
    const head = this.#freeHead;
    let i = head;
    for (let k = 0; k < n; k++) {
      const b = bufs[k]!;
      const d = this.desc + i * 16;
      // Two 32-bit halves: a BigInt per descriptor would dominate the fast path.
      m.writeU32(d, b.addr >>> 0);
      m.writeU32(d + 4, Math.floor(b.addr / 0x1_0000_0000));
      m.writeU32(d + 8, b.len);
      const flags = (b.write ? VIRTQ_DESC_F_WRITE : 0) | (k < n - 1 ? VIRTQ_DESC_F_NEXT : 0);
      m.writeU16(d + 12, flags);
      if (k < n - 1) i = m.readU16(d + 14);
      else this.#freeHead = m.readU16(d + 14);
    }
    this.#numFree -= n;
    this.#tokens[head] = token;
    this.#chainLen[head] = n;
    m.writeU16(this.avail + 4 + 2 * (this.#availIdx % this.size), head);
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    m.writeU16(this.avail + 2, this.#availIdx);
    return true;
  }

  /**
   * Notifies the device unless it said it does not need it: with EVENT_IDX when the new
   * available index has not passed avail_event, else when the used ring's NO_NOTIFY flag is set.
   */
  kick(): void {
    const old = this.#kickedIdx;
    this.#kickedIdx = this.#availIdx;
    if (this.eventIdx) {
      const availEvent = this.memory.readU16(this.used + 4 + 8 * this.size);
      if (!needEvent(availEvent, this.#availIdx, old)) return;
    } else if ((this.memory.readU16(this.used) & VIRTQ_USED_F_NO_NOTIFY) !== 0) return;
    this.kicks++;
    this.platform.mmioWrite(this.notifyAddr, 2, this.index);
  }

  /**
   * Asks for no used-buffer interrupts (the driver polls this queue, as virtio_net does for
   * transmit completions it reaps on the next send): NO_INTERRUPT, or used_event far ahead.
   */
  quiet(): void {
    this.#quiet = true;
    this.#armUsedEvent();
  }

  #armUsedEvent(): void {
    if (this.eventIdx) {
      // used_event: interrupt once the device's used index passes this value.
      const ev = this.#quiet ? (this.#lastUsed + 0x8000) & 0xffff : this.#lastUsed;
      this.memory.writeU16(this.avail + 4 + 2 * this.size, ev);
    } else {
      this.memory.writeU16(this.avail, this.#quiet ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0);
    }
  }

  /**
   * Reaps one used entry, or undefined when the device has returned nothing new. Entries naming
   * a head the driver never gave out are skipped and counted (a broken device, not a crash).
   */
  reap(): VqUsed<T> | undefined {
    const m = this.memory;
    const usedIdx = m.readU16(this.used + 2);
    let id = 0;
    let len = 0;
    let token: T | undefined;
    while (token === undefined) {
      if (usedIdx === this.#lastUsed) {
        this.#armUsedEvent();
        return undefined;
      }
      const e = this.used + 4 + 8 * (this.#lastUsed % this.size);
      id = m.readU32(e);
      len = m.readU32(e + 4);
      this.#lastUsed = (this.#lastUsed + 1) & 0xffff;
      token = id < this.size ? this.#tokens[id] : undefined;
      if (token === undefined) this.bogusUsed++;
    }
    if (this.eventIdx) this.#armUsedEvent();
    const n = this.#chainLen[id] ?? 1;
    this.#tokens[id] = undefined;
    // Return the chain to the free list: walk to its tail, link the tail to the old free head.
    let tail = id;
    for (let k = 1; k < n; k++) tail = m.readU16(this.desc + tail * 16 + 14);
    m.writeU16(this.desc + tail * 16 + 14, this.#freeHead);
    this.#freeHead = id;
    this.#numFree += n;
    return { token, len };
  }

  /** Tokens of chains still owned by the device. */
  outstanding(): T[] {
    return this.#tokens.filter((t): t is T => t !== undefined);
  }

  free(): void {
    this.alloc.free(this.desc);
    this.alloc.free(this.avail);
    this.alloc.free(this.used);
  }
}

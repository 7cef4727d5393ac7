/**
 * The driver side of a split virtqueue (virtio 1.3 §2.7.13, "Supplying Buffers to The Device";
 * §2.7.14, "Receiving Used Buffers From The Device"), as reusable code for the model guest kernel
 * and tests — the counterpart rust-vmm ships as its queue mock.
 *
 * Like Linux's virtio_ring.c, the driver keeps its own shadow of the free list and of each
 * chain's length, so a device that writes garbage into the descriptor table cannot corrupt the
 * driver's bookkeeping; a used entry that names a descriptor not in flight is a device error
 * (VQ_DEVICE_BAD_ID), reported to the caller, who marks the device broken.
 */
import type { GuestAllocator, GuestMemory } from "../memory/index.js";
import {
  AVAIL_ALIGN,
  DESC_ALIGN,
  USED_ALIGN,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
  VirtqueueError,
  availRingBytes,
  checkRingConfig,
  descTableBytes,
  needEvent,
  usedRingBytes,
  type Segment,
  type SplitRingConfig,
} from "./ring.js";

export interface UsedBuffer<T> {
  readonly token: T;
  /** Bytes the device wrote into the writable part. */
  readonly len: number;
  readonly head: number;
}

export interface AddOptions {
  /**
   * Put the chain in an indirect table (needs an allocator and VIRTIO_RING_F_INDIRECT_DESC).
   * Default: only when the chain does not fit the free descriptors.
   */
  readonly indirect?: boolean;
}

const NONE = -1;

export class SplitQueueDriver<T> {
  readonly config: SplitRingConfig;
  readonly size: number;
  readonly #mem: GuestMemory;
  readonly #alloc: GuestAllocator | undefined;
  readonly #mask: number;
  readonly #next: Uint16Array; // free list links (shadow)
  readonly #chainLen: Uint16Array; // descriptors per in-flight head (1 for indirect)
  readonly #indirectTable: number[]; // indirect table address per head, or NONE
  readonly #tokens: (T | undefined)[];
  readonly #inFlightHead: Uint8Array;
  #freeHead = 0;
  #numFree: number;
  #availIdx = 0;
  #numAdded = 0;
  #lastUsed = 0;
  #availFlags = 0;
  #inFlightCount = 0;
  #ownedAreas: number[] = [];
  readonly #desc: DataView;
  readonly #avail: DataView;
  readonly #used: DataView;

  /**
   * Drives an existing ring layout. The areas must already be zeroed (allocate() does that).
   * An allocator is needed only for indirect chains.
   */
  constructor(memory: GuestMemory, config: SplitRingConfig, allocator?: GuestAllocator) {
    const bad = checkRingConfig(config, (a, l) => memory.contains(a, l));
    if (bad !== undefined) throw bad;
    this.#mem = memory;
    this.#desc = dataView(memory.view(config.descAddr, descTableBytes(config.size)));
    this.#avail = dataView(memory.view(config.availAddr, availRingBytes(config.size)));
    this.#used = dataView(memory.view(config.usedAddr, usedRingBytes(config.size)));
    this.#alloc = allocator;
    this.config = config;
    this.size = config.size;
    this.#mask = config.size - 1;
    this.#next = new Uint16Array(config.size);
    for (let i = 0; i < config.size; i++) this.#next[i] = i + 1;
    this.#chainLen = new Uint16Array(config.size);
    this.#indirectTable = new Array<number>(config.size).fill(NONE);
    this.#tokens = new Array<T | undefined>(config.size).fill(undefined);
    this.#inFlightHead = new Uint8Array(config.size);
    this.#numFree = config.size;
  }

  /** Carves a zeroed ring of `size` entries out of guest RAM with the §2.7 alignments. */
  static allocate<T>(memory: GuestMemory, allocator: GuestAllocator, size: number, opts: { eventIdx: boolean; indirect?: boolean }): SplitQueueDriver<T> {
    const sizeErr = checkRingConfig({ size, descAddr: 0, availAddr: 0, usedAddr: 0, eventIdx: opts.eventIdx });
    if (sizeErr !== undefined) throw sizeErr;
    const descAddr = allocator.alloc(descTableBytes(size), Math.max(DESC_ALIGN, 16));
    const availAddr = allocator.alloc(availRingBytes(size), AVAIL_ALIGN);
    const usedAddr = allocator.alloc(usedRingBytes(size), USED_ALIGN);
    memory.fill(descAddr, descTableBytes(size));
    memory.fill(availAddr, availRingBytes(size));
    memory.fill(usedAddr, usedRingBytes(size));
    const q = new SplitQueueDriver<T>(memory, { size, descAddr, availAddr, usedAddr, eventIdx: opts.eventIdx, indirect: opts.indirect ?? true }, allocator);
    q.#ownedAreas = [descAddr, availAddr, usedAddr];
    return q;
  }

  /** Returns the ring areas (if allocate() made them) and indirect tables to the allocator. */
  release(): void {
    const a = this.#alloc;
    if (a === undefined) return;
    for (let h = 0; h < this.size; h++) {
      const t = this.#indirectTable[h] ?? NONE;
      if (t !== NONE) a.free(t);
      this.#indirectTable[h] = NONE;
    }
    for (const addr of this.#ownedAreas) a.free(addr);
    this.#ownedAreas = [];
  }

  get numFree(): number {
    return this.#numFree;
  }
  /** Chains added and not yet reaped. */
  get inFlight(): number {
    return this.#inFlightCount;
  }
  get availIdx(): number {
    return this.#availIdx;
  }
  get lastUsedIdx(): number {
    return this.#lastUsed;
  }

  /**
   * Adds a chain of device-readable `out` segments followed by device-writable `inn` segments and
   * publishes it in the available ring (§2.7.13). Returns the head. Throws VQ_FULL when there is
   * no room (the caller backs off, as virtqueue_add returns -ENOSPC), VQ_EMPTY_CHAIN for no segments.
   */
  add(out: readonly Segment[], inn: readonly Segment[], token: T, opts: AddOptions = {}): number {
    const total = out.length + inn.length;
    if (total === 0) throw new VirtqueueError("VQ_EMPTY_CHAIN", "a chain needs at least one segment");
    const canIndirect = this.#alloc !== undefined && (this.config.indirect ?? true);
    const useIndirect = opts.indirect ?? (canIndirect && total > 1 && total > this.#numFree);
    if (useIndirect && !canIndirect) throw new VirtqueueError("VQ_NO_INDIRECT", "indirect chains need an allocator and VIRTIO_RING_F_INDIRECT_DESC");
    const need = useIndirect ? 1 : total;
    if (this.#numFree < need) throw new VirtqueueError("VQ_FULL", `queue has ${this.#numFree} free descriptor(s), chain needs ${need}`, { details: { free: this.#numFree, need } });
    const mem = this.#mem;
    const head = this.#freeHead;
    if (useIndirect && this.#alloc !== undefined) {
      const table = this.#alloc.alloc(16 * total, 16);
      const tdv = dataView(mem.view(table, 16 * total));
      for (let k = 0; k < total; k++) {
        const s = k < out.length ? out[k] : inn[k - out.length];
        if (s === undefined) continue;
        const flags = (k < out.length ? 0 : VIRTQ_DESC_F_WRITE) | (k + 1 < total ? VIRTQ_DESC_F_NEXT : 0);
        writeDesc(tdv, 16 * k, s.addr, s.len, flags, k + 1 < total ? k + 1 : 0);
      }
      writeDesc(this.#desc, 16 * head, table, 16 * total, VIRTQ_DESC_F_INDIRECT, 0);
      this.#freeHead = this.#next[head] ?? 0;
      this.#indirectTable[head] = table;
      this.#chainLen[head] = 1;
    } else {
      let i = head;
      for (let k = 0; k < total; k++) {
        const s = k < out.length ? out[k] : inn[k - out.length];
        const nxt = this.#next[i] ?? 0;
        if (s !== undefined) {
          const flags = (k < out.length ? 0 : VIRTQ_DESC_F_WRITE) | (k + 1 < total ? VIRTQ_DESC_F_NEXT : 0);
          writeDesc(this.#desc, 16 * i, s.addr, s.len, flags, k + 1 < total ? nxt : 0);
        }
        i = nxt;
      }
      this.#freeHead = i;
      this.#chainLen[head] = total;
    }
    this.#numFree -= need;
    this.#tokens[head] = token;
    this.#inFlightHead[head] = 1;
    this.#inFlightCount++;
    this.#avail.setUint16(4 + 2 * (this.#availIdx & this.#mask), head, true);
    this.#availIdx = (this.#availIdx + 1) & 0xffff;
    // §2.7.13.3: the ring entry must be visible before idx; JS is single-threaded here.
    this.#avail.setUint16(2, this.#availIdx, true);
    this.#numAdded++;
    return head;
  }

  /**
   * Whether the device must be notified about the chains added since the last call (§2.7.13.4,
   * §2.7.10): with EVENT_IDX when avail.idx passed avail_event, otherwise unless the device set
   * VIRTQ_USED_F_NO_NOTIFY.
   */
  kickPrepare(): boolean {
    if (this.#numAdded === 0) return false;
    const now = this.#availIdx;
    const old = (now - this.#numAdded) & 0xffff;
    this.#numAdded = 0;
    if (this.config.eventIdx) return needEvent(this.#used.getUint16(4 + 8 * this.size, true), now, old);
    return (this.#used.getUint16(0, true) & VIRTQ_USED_F_NO_NOTIFY) === 0;
  }

  /** True when the device has returned buffers not yet reaped. */
  hasUsed(): boolean {
    return this.#used.getUint16(2, true) !== this.#lastUsed;
  }

  /**
   * Reaps one used buffer (§2.7.14), or undefined when there is none. Throws VirtqueueError
   * (VQ_DEVICE_USED_AHEAD, VQ_DEVICE_BAD_ID) when the device broke the ring rules.
   */
  getUsed(): UsedBuffer<T> | undefined {
    const used = this.#used;
    const usedIdx = used.getUint16(2, true);
    if (usedIdx === this.#lastUsed) return undefined;
    if (((usedIdx - this.#lastUsed) & 0xffff) > this.size) {
      throw new VirtqueueError("VQ_DEVICE_USED_AHEAD", `device used index ${usedIdx} runs ahead of ${this.#lastUsed}`, { details: { usedIdx } });
    }
    const e = 4 + 8 * (this.#lastUsed & this.#mask);
    const head = used.getUint32(e, true);
    const len = used.getUint32(e + 4, true);
    if (head >= this.size || this.#inFlightHead[head] !== 1) {
      throw new VirtqueueError("VQ_DEVICE_BAD_ID", `device returned descriptor ${head}, which is not in flight`, { details: { head } });
    }
    const token = this.#tokens[head] as T;
    this.#freeChain(head);
    this.#lastUsed = (this.#lastUsed + 1) & 0xffff;
    // Linux: with EVENT_IDX and callbacks on, keep used_event at the reap point.
    if (this.config.eventIdx && (this.#availFlags & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0) {
      this.#avail.setUint16(4 + 2 * this.size, this.#lastUsed, true);
    }
    return { token, len, head };
  }

  /** Asks the device not to interrupt (§2.7.7); best effort, as the spec says. */
  disableCallbacks(): void {
    this.#availFlags |= VIRTQ_AVAIL_F_NO_INTERRUPT;
    if (!this.config.eventIdx) this.#avail.setUint16(0, this.#availFlags, true);
  }

  /**
   * Asks for an interrupt at the next used buffer. Returns true when used buffers are already
   * pending, so the caller must reap again rather than wait (virtqueue_enable_cb's race).
   */
  enableCallbacks(): boolean {
    this.#availFlags &= ~VIRTQ_AVAIL_F_NO_INTERRUPT;
    if (this.config.eventIdx) this.#avail.setUint16(4 + 2 * this.size, this.#lastUsed, true);
    else this.#avail.setUint16(0, this.#availFlags, true);
    return this.hasUsed();
  }

  /** Takes back every chain still in flight (after a device reset) and returns their tokens. */
  detachUnused(): T[] {
    const out: T[] = [];
    for (let h = 0; h < this.size; h++) {
      if (this.#inFlightHead[h] === 1) {
        out.push(this.#tokens[h] as T);
        this.#freeChain(h);
      }
    }
    return out;
  }

  #freeChain(head: number): void {
    const n = this.#chainLen[head] ?? 1;
    const table = this.#indirectTable[head] ?? NONE;
    if (table !== NONE) {
      this.#alloc?.free(table);
      this.#indirectTable[head] = NONE;
    }
    // Relink the chain's descriptors (from our shadow, never from device-writable memory) onto
    // the free list; the chain was allocated by following #next from head, so the same links hold.
    let last = head;
    for (let k = 1; k < n; k++) last = this.#next[last] ?? 0;
    this.#next[last] = this.#freeHead;
    this.#freeHead = head;
    this.#numFree += n;
    this.#tokens[head] = undefined;
    this.#inFlightHead[head] = 0;
    this.#inFlightCount--;
    this.#chainLen[head] = 0;
  }
}

function writeDesc(dv: DataView, at: number, addr: number, len: number, flags: number, next: number): void {
  dv.setUint32(at, addr % 0x1_0000_0000, true);
  dv.setUint32(at + 4, Math.floor(addr / 0x1_0000_0000), true);
  dv.setUint32(at + 8, len, true);
  dv.setUint16(at + 12, flags, true);
  dv.setUint16(at + 14, next, true);
}

function dataView(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

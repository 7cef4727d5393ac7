/**
 * The device side of a split virtqueue (virtio 1.3 §2.7), usable on its own: the virtio-net
 * device drives it, and so can the NIC's vDPA data plane given only guest memory and the ring
 * addresses (what vhost-vdpa's VHOST_SET_VRING_NUM / _ADDR / _BASE carry).
 *
 * A driver is untrusted. Every violation of the ring rules is recorded under its own code,
 * counted, and leaves the queue "broken" (as QEMU's virtio_error does): pop() then returns
 * undefined until the queue is rebuilt after a device reset, and the owner reports
 * DEVICE_NEEDS_RESET to the driver (§2.1.2: "The device SHOULD set DEVICE_NEEDS_RESET when it
 * enters an error state that a reset is needed"). Nothing a driver writes makes pop() throw.
 */
import type { GuestMemory } from "../memory/index.js";
import {
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_USED_F_NO_NOTIFY,
  VirtqueueError,
  checkRingConfig,
  needEvent,
  type Segment,
  type SplitRingConfig,
  availRingBytes,
  descTableBytes,
  usedRingBytes,
} from "./ring.js";

/** One available descriptor chain, split into its device-readable and device-writable parts. */
export interface DescChain {
  /** Head descriptor index: what goes back in the used ring. */
  readonly head: number;
  /** Device-readable segments, in chain order (§2.7.4: all of them precede the writable ones). */
  readonly readable: Segment[];
  readonly writable: Segment[];
  readonly readableLen: number;
  readonly writableLen: number;
  /** Descriptors walked, including an indirect table's entries. */
  readonly descriptors: number;
}

/** Where the device's indices start (VHOST_SET_VRING_BASE; snapshot / restore). */
export interface QueueBase {
  /** Next available-ring slot the device will read. */
  readonly lastAvailIdx: number;
  /** Next used-ring slot the device will write; defaults to lastAvailIdx (nothing in flight). */
  readonly usedIdx?: number;
}

export interface DeviceQueueStats {
  chains: number;
  descriptors: number;
  usedEntries: number;
  interruptsSent: number;
  interruptsSuppressed: number;
  /** Violations by code (VQ_*). */
  violations: Record<string, number>;
}

/** Indirect tables may hold this many entries even in a smaller queue. */
export const MAX_INDIRECT = 1024;

export class SplitQueueDevice {
  readonly size: number;
  readonly descAddr: number;
  readonly availAddr: number;
  readonly usedAddr: number;
  readonly eventIdx: boolean;
  readonly indirect: boolean;
  readonly #mem: GuestMemory;
  readonly #mask: number;
  readonly #usedEventOff: number;
  readonly #availEventOff: number;
  #lastAvail: number;
  #usedIdx: number;
  #signalled = 0;
  #signalledValid = false;
  #broken: VirtqueueError | undefined;
  #notifyOn = true;
  // Zero-copy views of the three ring areas, bounds-checked once at construction and re-made
  // when the memory is rebound to other bytes (GuestMemory.generation, e.g. v86 growing its heap).
  #desc: DataView;
  #avail: DataView;
  #used: DataView;
  #generation: number;
  #onViolation: ((e: VirtqueueError) => void) | undefined;
  readonly stats: DeviceQueueStats = { chains: 0, descriptors: 0, usedEntries: 0, interruptsSent: 0, interruptsSuppressed: 0, violations: {} };

  /**
   * Throws VirtqueueError (VQ_BAD_SIZE, VQ_BAD_ALIGNMENT, VQ_RING_OUT_OF_RANGE) when the
   * configuration itself is unusable; a transport turns that into DEVICE_NEEDS_RESET.
   */
  constructor(memory: GuestMemory, config: SplitRingConfig, base?: QueueBase, onViolation?: (e: VirtqueueError) => void) {
    const bad = checkRingConfig(config, (a, l) => memory.contains(a, l));
    if (bad !== undefined) throw bad;
    this.#mem = memory;
    this.size = config.size;
    this.#mask = config.size - 1;
    this.descAddr = config.descAddr;
    this.availAddr = config.availAddr;
    this.usedAddr = config.usedAddr;
    this.eventIdx = config.eventIdx;
    this.indirect = config.indirect ?? true;
    this.#usedEventOff = 4 + 2 * config.size;
    this.#availEventOff = 4 + 8 * config.size;
    this.#lastAvail = (base?.lastAvailIdx ?? 0) & 0xffff;
    this.#usedIdx = (base?.usedIdx ?? this.#lastAvail) & 0xffff;
    this.#onViolation = onViolation;
    this.#desc = dataView(memory.view(config.descAddr, descTableBytes(config.size)));
    this.#avail = dataView(memory.view(config.availAddr, availRingBytes(config.size)));
    this.#used = dataView(memory.view(config.usedAddr, usedRingBytes(config.size)));
    this.#generation = memory.generation;
  }

  /** Re-makes the ring views if the memory was rebound since they were made. */
  #fresh(): void {
    if (this.#mem.generation === this.#generation) return;
    this.#desc = dataView(this.#mem.view(this.descAddr, descTableBytes(this.size)));
    this.#avail = dataView(this.#mem.view(this.availAddr, availRingBytes(this.size)));
    this.#used = dataView(this.#mem.view(this.usedAddr, usedRingBytes(this.size)));
    this.#generation = this.#mem.generation;
  }

  /** Called once per violation (after counting); the owner typically sets DEVICE_NEEDS_RESET. */
  set onViolation(fn: ((e: VirtqueueError) => void) | undefined) {
    this.#onViolation = fn;
  }

  get lastAvailIdx(): number {
    return this.#lastAvail;
  }
  get usedIdx(): number {
    return this.#usedIdx;
  }
  /** Chains popped and not yet returned through the used ring. */
  get inFlight(): number {
    return (this.#lastAvail - this.#usedIdx) & 0xffff;
  }
  /** The first violation seen; once set, the queue serves nothing until rebuilt. */
  get broken(): VirtqueueError | undefined {
    return this.#broken;
  }
  /** The state to hand to a successor (save/restore, handing the ring to another data plane). */
  base(): Required<QueueBase> {
    return { lastAvailIdx: this.#lastAvail, usedIdx: this.#usedIdx };
  }

  /** Number of chains the driver has made available and the device has not popped. */
  available(): number {
    this.#fresh();
    if (this.#broken !== undefined) return 0;
    const n = (this.#avail.getUint16(2, true) - this.#lastAvail) & 0xffff;
    return n > this.size ? 0 : n;
  }

  /**
   * Pops the next available chain, or undefined when there is none (or the queue is broken; see
   * `broken`). The walk is bounded: a direct chain longer than the queue, or an indirect chain
   * longer than its table, is a loop (§2.7.5.3.1, §2.7.13.2 — rust-vmm's TTL).
   */
  pop(): DescChain | undefined {
    this.#fresh();
    if (this.#broken !== undefined) return undefined;
    const mem = this.#mem;
    const avail = this.#avail;
    const availIdx = avail.getUint16(2, true);
    const pending = (availIdx - this.#lastAvail) & 0xffff;
    if (pending === 0) return undefined;
    if (pending > this.size) {
      // Firecracker treats this as a malicious driver: the index cannot be more than a ring ahead.
      return this.#fail("VQ_AVAIL_IDX_AHEAD", `available index ${availIdx} is ${pending} entries ahead of ${this.#lastAvail} in a queue of ${this.size}`, { availIdx, lastAvailIdx: this.#lastAvail });
    }
    const head = avail.getUint16(4 + 2 * (this.#lastAvail & this.#mask), true);
    if (head >= this.size) {
      return this.#fail("VQ_BAD_HEAD", `available ring names descriptor ${head} of ${this.size}`, { head });
    }
    const readable: Segment[] = [];
    const writable: Segment[] = [];
    let readableLen = 0;
    let writableLen = 0;
    let table = this.#desc;
    let tableSize = this.size;
    let inIndirect = false;
    let i = head;
    let walked = 0;
    let total = 0;
    for (;;) {
      if (++walked > tableSize) {
        return this.#fail("VQ_CHAIN_LOOP", `descriptor chain from ${head} is longer than its table of ${tableSize} (a loop)`, { head });
      }
      total++;
      const d = 16 * i;
      const lo = table.getUint32(d, true);
      const hi = table.getUint32(d + 4, true);
      const len = table.getUint32(d + 8, true);
      const flags = table.getUint16(d + 12, true);
      const next = table.getUint16(d + 14, true);
      if (hi > 0x1fffff) {
        return this.#fail("VQ_BAD_BUFFER", `descriptor ${i} address is beyond guest memory`, { head, index: i });
      }
      const addr = hi * 0x1_0000_0000 + lo;
      if ((flags & VIRTQ_DESC_F_INDIRECT) !== 0) {
        // §2.7.5.3.1: the driver MUST NOT set INDIRECT without the feature, MUST NOT set it inside
        // an indirect table, and MUST NOT set both INDIRECT and NEXT.
        if (!this.indirect) return this.#fail("VQ_INDIRECT_NOT_NEGOTIATED", `descriptor ${i} is indirect but VIRTIO_RING_F_INDIRECT_DESC was not negotiated`, { head, index: i });
        if (inIndirect) return this.#fail("VQ_INDIRECT_NESTED", `indirect table entry ${i} is itself indirect`, { head, index: i });
        if ((flags & VIRTQ_DESC_F_NEXT) !== 0) return this.#fail("VQ_INDIRECT_WITH_NEXT", `descriptor ${i} sets both INDIRECT and NEXT`, { head, index: i });
        // A table longer than max(queue size, 1024) entries is refused, as QEMU refuses more than
        // VIRTQUEUE_MAX_SIZE: it bounds the work one pop can cost.
        if (len === 0 || len % 16 !== 0 || len / 16 > Math.max(this.size, MAX_INDIRECT)) {
          return this.#fail("VQ_INDIRECT_BAD_LEN", `indirect table length ${len} is not a multiple of 16 in 16..${16 * Math.max(this.size, MAX_INDIRECT)}`, { head, len });
        }
        if (!mem.contains(addr, len)) return this.#fail("VQ_BAD_BUFFER", `indirect table 0x${addr.toString(16)}+${len} is outside guest memory`, { head, addr, len });
        table = dataView(mem.view(addr, len));
        tableSize = len / 16;
        inIndirect = true;
        walked = 0;
        i = 0;
        continue;
      }
      if (!mem.contains(addr, len)) {
        return this.#fail("VQ_BAD_BUFFER", `buffer 0x${addr.toString(16)}+${len} is outside guest memory`, { head, addr, len });
      }
      if ((flags & VIRTQ_DESC_F_WRITE) !== 0) {
        writable.push({ addr, len });
        writableLen += len;
      } else {
        // §2.7.4.2: "The driver MUST place any device-writable descriptor elements after any
        // device-readable descriptor elements."
        if (writable.length > 0) return this.#fail("VQ_READ_AFTER_WRITE", `readable descriptor ${i} follows a writable one`, { head, index: i });
        readable.push({ addr, len });
        readableLen += len;
      }
      if ((flags & VIRTQ_DESC_F_NEXT) === 0) break;
      if (next >= tableSize) return this.#fail("VQ_BAD_NEXT", `descriptor ${i} links to ${next}, outside a table of ${tableSize}`, { head, index: i, next });
      i = next;
    }
    this.#lastAvail = (this.#lastAvail + 1) & 0xffff;
    // As QEMU's virtqueue_pop: with EVENT_IDX and notifications wanted, keep avail_event at the
    // next slot, so the driver notifies for the very next buffer (§2.7.10).
    if (this.eventIdx && this.#notifyOn) this.#used.setUint16(this.#availEventOff, this.#lastAvail, true);
    this.stats.chains++;
    this.stats.descriptors += total;
    return { head, readable, writable, readableLen, writableLen, descriptors: total };
  }

  /**
   * Returns the chain with head `head` to the driver, `len` bytes written (§2.7.8). The entry is
   * visible to the driver only after publishUsed(); batch several, then publish once.
   * Throws VQ_USED_OVERFLOW for a device-side bug (more used entries than popped chains).
   */
  addUsed(head: number, len: number): void {
    this.#fresh();
    if (this.#broken !== undefined) return;
    if (this.inFlight === 0 || head >= this.size) {
      throw new VirtqueueError("VQ_USED_OVERFLOW", `device returned descriptor ${head} with ${this.inFlight} chain(s) in flight`, { details: { head } });
    }
    const e = 4 + 8 * (this.#usedIdx & this.#mask);
    this.#used.setUint32(e, head, true);
    this.#used.setUint32(e + 4, len, true);
    this.#usedIdx = (this.#usedIdx + 1) & 0xffff;
    this.stats.usedEntries++;
  }

  /** Makes the used entries added so far visible (writes used.idx). */
  publishUsed(): void {
    this.#fresh();
    if (this.#broken !== undefined) return;
    this.#used.setUint16(2, this.#usedIdx, true);
  }

  /** addUsed + publishUsed. */
  pushUsed(head: number, len: number): void {
    this.addUsed(head, len);
    this.publishUsed();
  }

  /**
   * Whether the driver wants an interrupt for the used entries published since the last call
   * (§2.7.7, §2.7.10): with EVENT_IDX, when used.idx has passed used_event; otherwise unless the
   * driver set VIRTQ_AVAIL_F_NO_INTERRUPT. Counts sent/suppressed interrupts. `usedIdx` defaults
   * to this queue's own index; an external data plane that wrote the ring itself passes the
   * published one (publishedUsedIdx()).
   */
  needsInterrupt(usedIdx = this.#usedIdx): boolean {
    this.#fresh();
    if (this.#broken !== undefined) return false;
    const now = usedIdx & 0xffff;
    const old = this.#signalled;
    const valid = this.#signalledValid;
    if (valid && now === old) return false;
    this.#signalled = now;
    this.#signalledValid = true;
    let want: boolean;
    if (this.eventIdx) want = !valid || needEvent(this.#avail.getUint16(this.#usedEventOff, true), now, old);
    else want = (this.#avail.getUint16(0, true) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
    if (want) this.stats.interruptsSent++;
    else this.stats.interruptsSuppressed++;
    return want;
  }

  /** used.idx as it stands in guest memory (whoever wrote it). */
  publishedUsedIdx(): number {
    this.#fresh();
    return this.#used.getUint16(2, true);
  }

  /** Asks the driver not to notify (while the device is polling anyway). */
  disableNotification(): void {
    this.#fresh();
    this.#notifyOn = false;
    if (this.#broken !== undefined || this.eventIdx) return; // with EVENT_IDX: leave avail_event behind
    this.#used.setUint16(0, this.#used.getUint16(0, true) | VIRTQ_USED_F_NO_NOTIFY, true);
  }

  /**
   * Asks the driver to notify on the next available buffer. Returns true when buffers arrived
   * meanwhile, so the caller must poll again instead of sleeping (the race vhost_enable_notify closes).
   */
  enableNotification(): boolean {
    this.#fresh();
    this.#notifyOn = true;
    if (this.#broken !== undefined) return false;
    if (this.eventIdx) this.#used.setUint16(this.#availEventOff, this.#lastAvail, true);
    else this.#used.setUint16(0, this.#used.getUint16(0, true) & ~VIRTQ_USED_F_NO_NOTIFY, true);
    return this.available() > 0;
  }

  /** Copies the chain's readable bytes, starting `skip` bytes in, into one buffer. */
  readChain(chain: DescChain, skip = 0): Uint8Array {
    const segs = chain.readable;
    const first = segs[0];
    // The common case, one segment: a single copy.
    if (segs.length === 1 && first !== undefined && skip <= first.len) return this.#mem.read(first.addr + skip, first.len - skip);
    const out = new Uint8Array(Math.max(0, chain.readableLen - skip));
    let o = 0;
    for (const s of segs) {
      if (skip >= s.len) {
        skip -= s.len;
        continue;
      }
      out.set(this.#mem.view(s.addr + skip, s.len - skip), o);
      o += s.len - skip;
      skip = 0;
    }
    return out;
  }

  /**
   * The chain's readable bytes from `skip` on without copying when they sit in one segment (a
   * view into guest memory, valid until the chain is returned and the driver reuses the buffer);
   * gathered into a copy otherwise.
   */
  readChainView(chain: DescChain, skip = 0): Uint8Array {
    const segs = chain.readable;
    const first = segs[0];
    if (segs.length === 1 && first !== undefined && skip <= first.len) return this.#mem.view(first.addr + skip, first.len - skip);
    // A header segment followed by one data segment (how Linux often sends): view the data.
    const second = segs[1];
    if (segs.length === 2 && first !== undefined && second !== undefined && skip === first.len) return this.#mem.view(second.addr, second.len);
    return this.readChain(chain, skip);
  }

  /**
   * Copies data into the chain's writable segments starting `skip` bytes in; returns the number
   * of bytes written (less than data.length when the buffers are too small).
   */
  writeChain(chain: DescChain, data: Uint8Array, skip = 0): number {
    let d = 0;
    for (const s of chain.writable) {
      if (d >= data.length) break;
      if (skip >= s.len) {
        skip -= s.len;
        continue;
      }
      const n = Math.min(s.len - skip, data.length - d);
      if (d === 0 && n === data.length) this.#mem.write(s.addr + skip, data);
      else this.#mem.write(s.addr + skip, data.subarray(d, d + n));
      d += n;
      skip = 0;
    }
    return d;
  }

  #fail(code: string, message: string, details: Record<string, unknown>): undefined {
    const e = new VirtqueueError(code, message, { details });
    this.stats.violations[code] = (this.stats.violations[code] ?? 0) + 1;
    this.#broken = e;
    this.#onViolation?.(e);
    return undefined;
  }
}

function dataView(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

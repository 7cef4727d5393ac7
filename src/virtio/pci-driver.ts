/**
 * The other side, shipped as a test double (STYLE.md: rust-vmm's driver-side mock): a minimal
 * virtio-pci modern driver that reaches a function only through configuration space, BAR
 * accesses, rings in guest memory and MSI-X messages — the path Linux's virtio_pci_modern takes
 * (find the vendor capabilities, reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK re-read,
 * queues, DRIVER_OK). Used by this layer's tests and benchmark, and usable by any layer's tests.
 * It talks to the PciFunction directly (no bus), so BAR accesses use BAR-relative offsets.
 */
import { VpfError } from "../base/index.js";
import type { GuestAllocator, GuestMemory } from "../memory/index.js";
import type { AccessWidth } from "../pci/index.js";
import { PCI_CAP_ID_VNDR, PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, type PciFunction } from "../pci/index.js";
import {
  COMMON_DF,
  COMMON_DFSELECT,
  COMMON_GF,
  COMMON_GFSELECT,
  COMMON_MSIX,
  COMMON_NUMQ,
  COMMON_Q_AVAILHI,
  COMMON_Q_AVAILLO,
  COMMON_Q_DESCHI,
  COMMON_Q_DESCLO,
  COMMON_Q_ENABLE,
  COMMON_Q_MSIX,
  COMMON_Q_NOFF,
  COMMON_Q_SELECT,
  COMMON_Q_SIZE,
  COMMON_Q_USEDHI,
  COMMON_Q_USEDLO,
  COMMON_STATUS,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_PCI_CAP_COMMON_CFG,
  VIRTIO_PCI_CAP_DEVICE_CFG,
  VIRTIO_PCI_CAP_ISR_CFG,
  VIRTIO_PCI_CAP_NOTIFY_CFG,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  bit,
} from "./constants.js";
import { SplitQueueDriver } from "./driver-queue.js";

/** The test driver could not bring the device up (the device refused or lacks something). */
export class VirtioDriverError extends VpfError {}

interface Window {
  bar: number;
  offset: number;
  length: number;
}

const MSI_ADDRESS = 0xfee0_0000;

export class VirtioPciDriver {
  readonly fn: PciFunction;
  readonly memory: GuestMemory;
  readonly allocator: GuestAllocator;
  readonly common: Window;
  readonly notifyWin: Window;
  readonly notifyMultiplier: number;
  readonly isrWin: Window;
  readonly deviceWin: Window;
  /** MSI-X vectors received, in order (data = vector number as programmed by enableMsix). */
  readonly interrupts: number[] = [];
  readonly queues = new Map<number, SplitQueueDriver<unknown>>();
  /** Notify offset per queue, read once at setup (as Linux maps each queue's doorbell once). */
  readonly #notifyAt = new Map<number, number>();
  #features = 0n;

  constructor(fn: PciFunction, memory: GuestMemory, allocator: GuestAllocator) {
    this.fn = fn;
    this.memory = memory;
    this.allocator = allocator;
    const found = new Map<number, Window & { mult: number }>();
    // Walk the capability list as Linux's virtio_pci_find_capability does.
    let p = fn.configRead(0x34, 1);
    for (let guard = 0; p !== 0 && guard < 48; guard++) {
      if (fn.configRead(p, 1) === PCI_CAP_ID_VNDR) {
        const type = fn.configRead(p + 3, 1);
        if (!found.has(type)) {
          found.set(type, { bar: fn.configRead(p + 4, 1), offset: fn.configRead(p + 8, 4), length: fn.configRead(p + 12, 4), mult: type === VIRTIO_PCI_CAP_NOTIFY_CFG ? fn.configRead(p + 16, 4) : 0 });
        }
      }
      p = fn.configRead(p + 1, 1);
    }
    const need = (t: number): Window & { mult: number } => {
      const w = found.get(t);
      if (w === undefined) throw new VirtioDriverError("VIRTIO_DRIVER_NO_CAP", `virtio capability type ${t} missing`);
      return w;
    };
    this.common = need(VIRTIO_PCI_CAP_COMMON_CFG);
    const n = need(VIRTIO_PCI_CAP_NOTIFY_CFG);
    this.notifyWin = n;
    this.notifyMultiplier = n.mult;
    this.isrWin = need(VIRTIO_PCI_CAP_ISR_CFG);
    this.deviceWin = need(VIRTIO_PCI_CAP_DEVICE_CFG);
    fn.setMsiSink((_addr, data) => this.interrupts.push(data));
  }

  // ------------------------------------------------------------------ raw register access

  commonRead(off: number, w: AccessWidth): number {
    return this.fn.barRead(this.common.bar, this.common.offset + off, w);
  }
  commonWrite(off: number, w: AccessWidth, v: number): void {
    this.fn.barWrite(this.common.bar, this.common.offset + off, w, v);
  }
  configRead(off: number, w: AccessWidth): number {
    return this.fn.barRead(this.deviceWin.bar, this.deviceWin.offset + off, w);
  }
  readIsr(): number {
    return this.fn.barRead(this.isrWin.bar, this.isrWin.offset, 1);
  }
  get status(): number {
    return this.commonRead(COMMON_STATUS, 1);
  }
  set status(v: number) {
    this.commonWrite(COMMON_STATUS, 1, v);
  }
  get numQueues(): number {
    return this.commonRead(COMMON_NUMQ, 2);
  }
  deviceFeatures(): bigint {
    this.commonWrite(COMMON_DFSELECT, 4, 0);
    const lo = this.commonRead(COMMON_DF, 4);
    this.commonWrite(COMMON_DFSELECT, 4, 1);
    const hi = this.commonRead(COMMON_DF, 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  writeDriverFeatures(f: bigint): void {
    this.commonWrite(COMMON_GFSELECT, 4, 0);
    this.commonWrite(COMMON_GF, 4, Number(f & 0xffff_ffffn));
    this.commonWrite(COMMON_GFSELECT, 4, 1);
    this.commonWrite(COMMON_GF, 4, Number((f >> 32n) & 0xffff_ffffn));
  }
  get features(): bigint {
    return this.#features;
  }

  /** Memory decode and bus mastering on, MSI-X enabled with vector v → data v. */
  enableFunction(): void {
    this.fn.configWrite(PCI_COMMAND, 2, this.fn.configRead(PCI_COMMAND, 2) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    const cap = this.fn.findCapability(0x11);
    if (cap === undefined) return;
    const ctrl = this.fn.configRead(cap + 2, 2);
    const n = (ctrl & 0x7ff) + 1;
    const table = this.fn.configRead(cap + 4, 4);
    const bir = table & 7;
    const off = table & ~7;
    for (let v = 0; v < n; v++) {
      this.fn.barWrite(bir, off + 16 * v, 4, MSI_ADDRESS);
      this.fn.barWrite(bir, off + 16 * v + 4, 4, 0);
      this.fn.barWrite(bir, off + 16 * v + 8, 4, v);
      this.fn.barWrite(bir, off + 16 * v + 12, 4, 0);
    }
    this.fn.configWrite(cap + 2, 2, ctrl | 0x8000);
  }

  /**
   * Steps 1-6 of §3.1.1: reset, ACKNOWLEDGE, DRIVER, accept `wanted ∩ offered`, FEATURES_OK,
   * re-read. Returns the accepted features; throws VIRTIO_DRIVER_FEATURES when the device refused.
   */
  negotiate(wanted: bigint): bigint {
    this.status = 0;
    this.status = VIRTIO_CONFIG_S_ACKNOWLEDGE;
    this.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;
    const f = wanted & this.deviceFeatures();
    this.writeDriverFeatures(f);
    this.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    if ((this.status & VIRTIO_CONFIG_S_FEATURES_OK) === 0) {
      throw new VirtioDriverError("VIRTIO_DRIVER_FEATURES", `device refused features 0x${f.toString(16)}`);
    }
    this.#features = f;
    return f;
  }

  /** Allocates and programs queue q (size: the device's maximum unless given). */
  setupQueue<T>(q: number, opts: { size?: number; vector?: number } = {}): SplitQueueDriver<T> {
    this.commonWrite(COMMON_Q_SELECT, 2, q);
    const max = this.commonRead(COMMON_Q_SIZE, 2);
    if (max === 0) throw new VirtioDriverError("VIRTIO_DRIVER_NO_QUEUE", `queue ${q} does not exist`);
    const size = Math.min(max, opts.size ?? max);
    const ring = SplitQueueDriver.allocate<T>(this.memory, this.allocator, size, {
      eventIdx: (this.#features & bit(VIRTIO_RING_F_EVENT_IDX)) !== 0n,
      indirect: (this.#features & bit(VIRTIO_RING_F_INDIRECT_DESC)) !== 0n,
    });
    const c = ring.config;
    this.commonWrite(COMMON_Q_SIZE, 2, size);
    this.commonWrite(COMMON_Q_MSIX, 2, opts.vector ?? q + 1);
    this.commonWrite(COMMON_Q_DESCLO, 4, c.descAddr % 0x1_0000_0000);
    this.commonWrite(COMMON_Q_DESCHI, 4, Math.floor(c.descAddr / 0x1_0000_0000));
    this.commonWrite(COMMON_Q_AVAILLO, 4, c.availAddr % 0x1_0000_0000);
    this.commonWrite(COMMON_Q_AVAILHI, 4, Math.floor(c.availAddr / 0x1_0000_0000));
    this.commonWrite(COMMON_Q_USEDLO, 4, c.usedAddr % 0x1_0000_0000);
    this.commonWrite(COMMON_Q_USEDHI, 4, Math.floor(c.usedAddr / 0x1_0000_0000));
    this.#notifyAt.set(q, this.notifyWin.offset + this.commonRead(COMMON_Q_NOFF, 2) * this.notifyMultiplier);
    this.commonWrite(COMMON_Q_ENABLE, 2, 1);
    this.queues.set(q, ring);
    return ring;
  }

  /** Config vector 0, then DRIVER_OK. */
  driverOk(): void {
    this.commonWrite(COMMON_MSIX, 2, 0);
    this.status = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
  }

  /** Writes the queue index at the queue's notify address (§4.1.4.4). */
  notify(q: number): void {
    let at = this.#notifyAt.get(q);
    if (at === undefined) {
      this.commonWrite(COMMON_Q_SELECT, 2, q);
      at = this.notifyWin.offset + this.commonRead(COMMON_Q_NOFF, 2) * this.notifyMultiplier;
    }
    this.fn.barWrite(this.notifyWin.bar, at, 2, q);
  }

  /** Kicks queue q if its ring says the device wants it. */
  kick(q: number): boolean {
    const ring = this.queues.get(q);
    if (ring === undefined || !ring.kickPrepare()) return false;
    this.notify(q);
    return true;
  }
}

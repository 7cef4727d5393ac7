/**
 * A minimal guest for the vmm's tests and benchmark (STYLE.md: ship the other side as a test
 * double). It reaches the machine only through the PciPlatform a Vm implements — configuration
 * cycles by bus/devfn, MMIO at the addresses it programmed into BARs, rings in guest memory
 * (src/virtio's driver-side queue), MSI-X messages — as a guest kernel does. It is not the model
 * guest (src/guest): no Linux rules beyond what bringing a virtio function up needs.
 */
import { VpfError } from "../base/index.js";
import { GuestAllocator, type GuestMemory } from "../memory/index.js";
import type { AccessWidth, PciPlatform } from "../pci/index.js";
import {
  COMMON_ADM_Q_IDX,
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
  SplitQueueDriver,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_PCI_CAP_COMMON_CFG,
  VIRTIO_PCI_CAP_DEVICE_CFG,
  VIRTIO_PCI_CAP_NOTIFY_CFG,
  VIRTIO_RING_F_EVENT_IDX,
} from "../virtio/index.js";

const MSI_ADDRESS = 0xfee0_0000;
const PCI_COMMAND = 0x04;
const CMD_MEMORY = 0x2;
const CMD_MASTER = 0x4;

/** Thrown when the test guest cannot bring something up (code VMM_TEST_GUEST; a test helper, not guest code). */
export class TestGuestError extends VpfError {
  constructor(message: string) {
    super("VMM_TEST_GUEST", message);
  }
}

export interface VirtioQueue {
  readonly index: number;
  readonly ring: SplitQueueDriver<number>;
  readonly vector: number;
}

/** A virtio PCI function the test guest brought up. */
export interface VirtioFunction {
  readonly bus: number;
  readonly devfn: number;
  readonly features: bigint;
  readonly queues: Map<number, VirtioQueue>;
  readonly adminQueue: VirtioQueue | undefined;
  /** Guest-physical addresses of the common config, notify base and device config. */
  readonly common: number;
  readonly notifyBase: number;
  readonly notifyMultiplier: number;
  readonly deviceCfg: number;
  /** MSI data values are (functionTag << 8) | vector. */
  readonly tag: number;
}

export class TestGuest {
  readonly platform: PciPlatform;
  readonly memory: GuestMemory;
  readonly allocator: GuestAllocator;
  /** MSI messages received: (address, data). */
  readonly msis: { address: number; data: number }[] = [];
  #nextMmio: number;
  #nextTag = 1;

  constructor(platform: PciPlatform, memory: GuestMemory, heap: { base: number; size: number }) {
    this.platform = platform;
    this.memory = memory;
    this.allocator = new GuestAllocator(memory, heap.base, heap.size);
    this.#nextMmio = platform.mmioWindow.base;
    platform.onMsi((address, data) => this.msis.push({ address, data }));
  }

  read(bus: number, devfn: number, off: number, w: AccessWidth): number {
    return this.platform.configRead(bus, devfn, off, w);
  }
  write(bus: number, devfn: number, off: number, w: AccessWidth, v: number): void {
    this.platform.configWrite(bus, devfn, off, w, v);
  }

  /** Every (bus, devfn) that answers on buses 0..maxBus, scanning all 256 devfns (ARI-style). */
  scan(maxBus: number): { bus: number; devfn: number; vendor: number; device: number }[] {
    const out: { bus: number; devfn: number; vendor: number; device: number }[] = [];
    for (let bus = 0; bus <= maxBus; bus++) {
      for (let devfn = 0; devfn < 256; devfn++) {
        const id = this.read(bus, devfn, 0, 4);
        if (id === 0xffff_ffff) continue;
        out.push({ bus, devfn, vendor: id & 0xffff, device: id >>> 16 });
      }
    }
    return out;
  }

  findCap(bus: number, devfn: number, id: number): number | undefined {
    let p = this.read(bus, devfn, 0x34, 1);
    for (let guard = 0; p !== 0 && guard < 64; guard++) {
      if (this.read(bus, devfn, p, 1) === id) return p;
      p = this.read(bus, devfn, p + 1, 1);
    }
    return undefined;
  }

  findExtCap(bus: number, devfn: number, id: number): number | undefined {
    let p = 0x100;
    for (let guard = 0; p !== 0 && guard < 64; guard++) {
      const h = this.read(bus, devfn, p, 4);
      if (h === 0xffff_ffff || h === 0) return undefined;
      if ((h & 0xffff) === id) return p;
      p = h >>> 20;
    }
    return undefined;
  }

  #alloc(size: number): number {
    const base = Math.ceil(this.#nextMmio / size) * size;
    if (base + size > this.platform.mmioWindow.base + this.platform.mmioWindow.size) throw new TestGuestError("MMIO window exhausted");
    this.#nextMmio = base + size;
    return base;
  }

  /** Sizes and places one BAR register pair at `reg` (a 64-bit memory BAR); returns its base. */
  #placeBar(bus: number, devfn: number, reg: number, count: number): number | undefined {
    const orig = this.read(bus, devfn, reg, 4);
    this.write(bus, devfn, reg, 4, 0xffff_ffff);
    const lo = this.read(bus, devfn, reg, 4);
    this.write(bus, devfn, reg, 4, orig);
    if (lo === 0) return undefined;
    const wide = (lo & 0x6) === 0x4;
    let size = (~(lo & 0xffff_fff0) >>> 0) + 1;
    if (wide) {
      this.write(bus, devfn, reg + 4, 4, 0xffff_ffff);
      const hi = this.read(bus, devfn, reg + 4, 4);
      this.write(bus, devfn, reg + 4, 4, 0);
      if (hi !== 0xffff_ffff) size += (~hi >>> 0) * 0x1_0000_0000;
    }
    const base = this.#alloc(size * count);
    this.write(bus, devfn, reg, 4, base % 0x1_0000_0000);
    if (wide) this.write(bus, devfn, reg + 4, 4, Math.floor(base / 0x1_0000_0000));
    return base;
  }

  /** Assigns the function's memory BARs and enables memory decoding and bus mastering. */
  assignBars(bus: number, devfn: number): void {
    for (let i = 0; i < 6; i++) {
      const reg = 0x10 + i * 4;
      const lo = this.read(bus, devfn, reg, 4);
      if ((lo & 1) !== 0) continue;
      this.#placeBar(bus, devfn, reg, 1);
      if ((lo & 0x6) === 0x4) i++;
    }
    this.write(bus, devfn, PCI_COMMAND, 2, this.read(bus, devfn, PCI_COMMAND, 2) | CMD_MEMORY | CMD_MASTER);
  }

  /** Places the SR-IOV VF BARs (size × TotalVFs each). */
  assignVfBars(bus: number, devfn: number, sriov: number): void {
    const total = this.read(bus, devfn, sriov + 0x0e, 2);
    for (let i = 0; i < 6; i++) {
      const reg = sriov + 0x24 + i * 4;
      const lo = this.read(bus, devfn, reg, 4);
      this.#placeBar(bus, devfn, reg, total);
      if ((lo & 0x6) === 0x4) i++;
    }
  }

  /** Address of BAR `i` of a function as programmed. */
  barAddress(bus: number, devfn: number, i: number): number {
    const lo = this.read(bus, devfn, 0x10 + i * 4, 4);
    const hi = (lo & 0x6) === 0x4 ? this.read(bus, devfn, 0x14 + i * 4, 4) : 0;
    return hi * 0x1_0000_0000 + ((lo & 0xffff_fff0) >>> 0);
  }

  /** Address of a VF's BAR `i`: the PF's VF BAR i + (n − 1) × VF BAR size. */
  vfBarAddress(pfBus: number, pfDevfn: number, sriov: number, i: number, n: number): number {
    const reg = sriov + 0x24 + i * 4;
    const lo = this.read(pfBus, pfDevfn, reg, 4);
    const hi = (lo & 0x6) === 0x4 ? this.read(pfBus, pfDevfn, reg + 4, 4) : 0;
    this.write(pfBus, pfDevfn, reg, 4, 0xffff_ffff);
    const size = (~(this.read(pfBus, pfDevfn, reg, 4) & 0xffff_fff0) >>> 0) + 1;
    this.write(pfBus, pfDevfn, reg, 4, lo);
    return hi * 0x1_0000_0000 + ((lo & 0xffff_fff0) >>> 0) + (n - 1) * size;
  }

  mmioRead(a: number, w: AccessWidth): number {
    return this.platform.mmioRead(a, w);
  }
  mmioWrite(a: number, w: AccessWidth, v: number): void {
    this.platform.mmioWrite(a, w, v);
  }

  /**
   * Brings a virtio-net function up the way Linux's virtio_pci_modern does: MSI-X, reset,
   * ACKNOWLEDGE, DRIVER, features (all offered ∩ `want`), FEATURES_OK (re-read), queues with a
   * vector each, the admin queue if offered and asked for, DRIVER_OK. `barOf(i)` gives the
   * address of BAR i (for a VF: from its PF's VF BAR).
   */
  virtioUp(bus: number, devfn: number, opts: { want: bigint; barOf: (i: number) => number; admin?: boolean; queueSize?: number }): VirtioFunction {
    const tag = this.#nextTag++;
    // Bus mastering and memory decoding (a VF has no Memory bit of its own in Linux; the model honours it).
    this.write(bus, devfn, PCI_COMMAND, 2, this.read(bus, devfn, PCI_COMMAND, 2) | CMD_MEMORY | CMD_MASTER);
    const msix = this.findCap(bus, devfn, 0x11);
    if (msix === undefined) throw new TestGuestError("no MSI-X");
    const nvec = (this.read(bus, devfn, msix + 2, 2) & 0x7ff) + 1;
    const tbl = this.read(bus, devfn, msix + 4, 4);
    const tableAddr = opts.barOf(tbl & 7) + (tbl & ~7);
    for (let v = 0; v < nvec; v++) {
      this.mmioWrite(tableAddr + v * 16, 4, MSI_ADDRESS);
      this.mmioWrite(tableAddr + v * 16 + 4, 4, 0);
      this.mmioWrite(tableAddr + v * 16 + 8, 4, (tag << 8) | v);
      this.mmioWrite(tableAddr + v * 16 + 12, 4, 0);
    }
    this.write(bus, devfn, msix + 2, 2, 0x8000);

    const win = new Map<number, { addr: number; mult: number }>();
    let p = this.read(bus, devfn, 0x34, 1);
    for (let guard = 0; p !== 0 && guard < 64; guard++) {
      if (this.read(bus, devfn, p, 1) === 0x09) {
        const type = this.read(bus, devfn, p + 3, 1);
        const bar = this.read(bus, devfn, p + 4, 1);
        const off = this.read(bus, devfn, p + 8, 4);
        const mult = type === VIRTIO_PCI_CAP_NOTIFY_CFG ? this.read(bus, devfn, p + 16, 4) : 0;
        if (!win.has(type)) win.set(type, { addr: opts.barOf(bar) + off, mult });
      }
      p = this.read(bus, devfn, p + 1, 1);
    }
    const common = win.get(VIRTIO_PCI_CAP_COMMON_CFG)?.addr;
    const notify = win.get(VIRTIO_PCI_CAP_NOTIFY_CFG);
    const deviceCfg = win.get(VIRTIO_PCI_CAP_DEVICE_CFG)?.addr ?? 0;
    if (common === undefined || notify === undefined) throw new TestGuestError("virtio capabilities missing");

    this.mmioWrite(common + COMMON_STATUS, 1, 0);
    this.mmioWrite(common + COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    this.mmioWrite(common + COMMON_STATUS, 1, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
    let offered = 0n;
    for (let sel = 0; sel < 2; sel++) {
      this.mmioWrite(common + COMMON_DFSELECT, 4, sel);
      offered |= BigInt(this.mmioRead(common + COMMON_DF, 4)) << BigInt(32 * sel);
    }
    const features = offered & opts.want;
    for (let sel = 0; sel < 2; sel++) {
      this.mmioWrite(common + COMMON_GFSELECT, 4, sel);
      this.mmioWrite(common + COMMON_GF, 4, Number((features >> BigInt(32 * sel)) & 0xffff_ffffn));
    }
    const s3 = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    this.mmioWrite(common + COMMON_STATUS, 1, s3);
    if ((this.mmioRead(common + COMMON_STATUS, 1) & VIRTIO_CONFIG_S_FEATURES_OK) === 0) throw new TestGuestError("device refused the features");
    this.mmioWrite(common + COMMON_MSIX, 2, 0);

    const eventIdx = (features & (1n << BigInt(VIRTIO_RING_F_EVENT_IDX))) !== 0n;
    const setup = (q: number, vector: number): VirtioQueue => {
      this.mmioWrite(common + COMMON_Q_SELECT, 2, q);
      const max = this.mmioRead(common + COMMON_Q_SIZE, 2);
      const size = Math.min(max, opts.queueSize ?? 64);
      this.mmioWrite(common + COMMON_Q_SIZE, 2, size);
      const ring = SplitQueueDriver.allocate<number>(this.memory, this.allocator, size, { eventIdx });
      const c = ring.config;
      this.mmioWrite(common + COMMON_Q_DESCLO, 4, c.descAddr);
      this.mmioWrite(common + COMMON_Q_DESCHI, 4, 0);
      this.mmioWrite(common + COMMON_Q_AVAILLO, 4, c.availAddr);
      this.mmioWrite(common + COMMON_Q_AVAILHI, 4, 0);
      this.mmioWrite(common + COMMON_Q_USEDLO, 4, c.usedAddr);
      this.mmioWrite(common + COMMON_Q_USEDHI, 4, 0);
      this.mmioWrite(common + COMMON_Q_MSIX, 2, vector);
      this.mmioWrite(common + COMMON_Q_ENABLE, 2, 1);
      return { index: q, ring, vector };
    };
    const queues = new Map<number, VirtioQueue>();
    const n = this.mmioRead(common + COMMON_NUMQ, 2);
    for (let q = 0; q < n; q++) queues.set(q, setup(q, q + 1));
    let adminQueue: VirtioQueue | undefined;
    if (opts.admin === true) {
      const idx = this.mmioRead(common + COMMON_ADM_Q_IDX, 2);
      adminQueue = setup(idx, n + 1);
    }
    this.mmioWrite(common + COMMON_STATUS, 1, s3 | VIRTIO_CONFIG_S_DRIVER_OK);
    return { bus, devfn, features, queues, adminQueue, common, notifyBase: notify.addr, notifyMultiplier: notify.mult, deviceCfg, tag };
  }

  /** The doorbell of queue q (queue_notify_off × multiplier). */
  kick(f: VirtioFunction, q: number): void {
    this.mmioWrite(f.common + COMMON_Q_SELECT, 2, q);
    const off = this.mmioRead(f.common + COMMON_Q_NOFF, 2);
    this.mmioWrite(f.notifyBase + off * f.notifyMultiplier, 2, q);
  }

  /**
   * Sends one admin command (device-readable bytes) and returns the device-writable bytes it got
   * back (status header + result), truncated to the used length.
   */
  adminCommand(f: VirtioFunction, request: Uint8Array, resultLen: number): Uint8Array {
    const aq = f.adminQueue;
    if (aq === undefined) throw new TestGuestError("no admin queue");
    const out = this.allocator.alloc(Math.max(8, request.length));
    const inn = this.allocator.alloc(8 + resultLen);
    this.memory.write(out, request);
    this.memory.fill(inn, 8 + resultLen);
    aq.ring.add([{ addr: out, len: request.length }], [{ addr: inn, len: 8 + resultLen }], 0);
    this.kick(f, aq.index);
    const used = aq.ring.getUsed();
    const bytes = used === undefined ? new Uint8Array(0) : this.memory.read(inn, used.len);
    this.allocator.free(out);
    this.allocator.free(inn);
    if (used === undefined) throw new TestGuestError("admin command not completed");
    return bytes;
  }
}

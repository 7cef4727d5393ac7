/**
 * The guest's virtio_pci modern driver (virtio 1.x §4.1; Linux drivers/virtio/virtio_pci_modern.c
 * and virtio_pci_common.c): finds the vendor capabilities, resets the device, negotiates
 * features, programs MSI-X vectors, sets up queues (and the admin queue, virtio 1.3 §2.12), and
 * implements sriov_configure with Linux's checks (reference/pci-sriov.md §10).
 */
import { GuestMemoryError, type GuestAllocator, type GuestMemory } from "../memory/index.js";
import { sysErr } from "./errors.js";
import { type InterruptController, MsixTable } from "./irq.js";
import { PCI_CAP_ID_VNDR, PCI_EXT_CAP_ID_SRIOV, type PciDev } from "./pci.js";
import type { PciCore, PciDriver } from "./pci-core.js";
import { DmaArena, SplitVirtqueue } from "./virtqueue.js";

/** Per-device DMA arena: 5 rings of MAX_QUEUE_SIZE plus two rings' worth of 2 KiB buffers and a page. */
const ARENA_BYTES = 5 * 4096 + 2 * 64 * 2048 + 2 * 4096;

export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;

export const VIRTIO_STATUS_ACKNOWLEDGE = 1;
export const VIRTIO_STATUS_DRIVER = 2;
export const VIRTIO_STATUS_DRIVER_OK = 4;
export const VIRTIO_STATUS_FEATURES_OK = 8;
export const VIRTIO_STATUS_NEEDS_RESET = 0x40;
export const VIRTIO_STATUS_FAILED = 0x80;

export const VIRTIO_RING_F_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;
export const VIRTIO_F_ACCESS_PLATFORM = 33;
export const VIRTIO_F_SR_IOV = 37;
export const VIRTIO_F_ADMIN_VQ = 41;

const VIRTIO_MSI_NO_VECTOR = 0xffff;

// Common configuration layout (virtio 1.3 §4.1.4.3).
const CC_DFSELECT = 0x00;
const CC_DF = 0x04;
const CC_GFSELECT = 0x08;
const CC_GF = 0x0c;
const CC_MSIX_CONFIG = 0x10;
const CC_NUM_QUEUES = 0x12;
const CC_STATUS = 0x14;
const CC_Q_SELECT = 0x16;
const CC_Q_SIZE = 0x18;
const CC_Q_MSIX = 0x1a;
const CC_Q_ENABLE = 0x1c;
const CC_Q_NOFF = 0x1e;
const CC_Q_DESCLO = 0x20;
const CC_Q_AVAILLO = 0x28;
const CC_Q_USEDLO = 0x30;
const CC_ADMIN_Q_IDX = 0x3c;
const CC_ADMIN_Q_NUM = 0x3e;

/** Largest ring the model driver asks for (Linux takes what the device offers; 64 keeps 255 VFs in 64 MiB of guest RAM). */
export const MAX_QUEUE_SIZE = 64;

export function bit(features: bigint, n: number): boolean {
  return ((features >> BigInt(n)) & 1n) === 1n;
}

/** Something on the virtio bus that a virtio driver (virtio_net) binds to. */
export interface VirtioDriver {
  readonly name: string;
  readonly deviceId: number;
  /** Feature bits the driver understands (transport bits are added by virtio_pci). */
  readonly features: bigint;
  probe(vdev: VirtioPciDevice): void;
  remove(vdev: VirtioPciDevice): void;
}

interface CfgRegion {
  readonly addr: number;
  readonly len: number;
}

/** One virtio device bound by virtio_pci: the `virtioN` device of sysfs. */
export class VirtioPciDevice {
  readonly index: number;
  readonly deviceId: number;
  readonly common: CfgRegion;
  readonly notify: CfgRegion;
  readonly notifyMultiplier: number;
  readonly isr: CfgRegion | undefined;
  readonly devcfg: CfgRegion | undefined;
  readonly msix: MsixTable;
  features = 0n;
  driver: VirtioDriver | undefined;
  readonly queues: SplitVirtqueue<unknown>[] = [];
  /** DMA memory of this device: rings here, buffers from the driver. */
  readonly arena: DmaArena;
  #nextEntry = 1;
  #tornDown = false;
  #configHandlers: (() => void)[] = [];

  constructor(
    readonly pci: PciDev,
    index: number,
    readonly memory: GuestMemory,
    readonly alloc: GuestAllocator,
    irq: InterruptController,
  ) {
    this.index = index;
    this.deviceId = pci.device >= 0x1040 ? pci.device - 0x1040 : pci.subsystemDevice;
    let common: CfgRegion | undefined;
    let notify: CfgRegion | undefined;
    let mult = 0;
    let isr: CfgRegion | undefined;
    let devcfg: CfgRegion | undefined;
    // Walk every vendor capability; the first of each type wins (virtio 1.x §4.1.4).
    let pos = pci.read8(0x34) & 0xfc;
    for (let ttl = 48; pos >= 0x40 && ttl > 0; ttl--) {
      if (pci.read8(pos) === PCI_CAP_ID_VNDR) {
        const type = pci.read8(pos + 3);
        const barNo = pci.read8(pos + 4);
        const off = pci.read32(pos + 8);
        const len = pci.read32(pos + 12);
        const bar = barNo < 6 ? pci.bars[barNo] : undefined;
        if (bar !== undefined && bar.address !== 0 && !bar.io && off + len <= bar.size) {
          const r = { addr: bar.address + off, len };
          if (type === VIRTIO_PCI_CAP_COMMON_CFG && common === undefined) common = r;
          else if (type === VIRTIO_PCI_CAP_NOTIFY_CFG && notify === undefined) {
            notify = r;
            mult = pci.read32(pos + 16);
          } else if (type === VIRTIO_PCI_CAP_ISR_CFG && isr === undefined) isr = r;
          else if (type === VIRTIO_PCI_CAP_DEVICE_CFG && devcfg === undefined) devcfg = r;
        }
      }
      pos = pci.read8(pos + 1) & 0xfc;
    }
    // virtio_pci_modern_probe: common and notify are mandatory, else -ENODEV... (-EINVAL there).
    if (common === undefined || notify === undefined) throw sysErr("ENODEV", `${pci.name}: missing virtio common or notify capability`);
    this.common = common;
    this.notify = notify;
    this.notifyMultiplier = mult;
    this.isr = isr;
    this.devcfg = devcfg;
    this.msix = new MsixTable(pci, irq);
    this.arena = new DmaArena(alloc, ARENA_BYTES);
  }

  get name(): string {
    return `virtio${this.index}`;
  }

  #r8(o: number): number {
    return this.pci.platform.mmioRead(this.common.addr + o, 1);
  }
  #r16(o: number): number {
    return this.pci.platform.mmioRead(this.common.addr + o, 2);
  }
  #r32(o: number): number {
    return this.pci.platform.mmioRead(this.common.addr + o, 4) >>> 0;
  }
  #w8(o: number, v: number): void {
    this.pci.platform.mmioWrite(this.common.addr + o, 1, v);
  }
  #w16(o: number, v: number): void {
    this.pci.platform.mmioWrite(this.common.addr + o, 2, v);
  }
  #w32(o: number, v: number): void {
    this.pci.platform.mmioWrite(this.common.addr + o, 4, v >>> 0);
  }
  #w64(o: number, v: number): void {
    this.#w32(o, v >>> 0);
    this.#w32(o + 4, Math.floor(v / 0x1_0000_0000));
  }

  get status(): number {
    return this.#r8(CC_STATUS);
  }
  addStatus(bits: number): void {
    this.#w8(CC_STATUS, this.status | bits);
  }

  /** Writes 0 and waits for 0 to read back (virtio 1.x §4.1.4.3.2). */
  reset(): void {
    this.#w8(CC_STATUS, 0);
    for (let i = 0; i < 1000 && this.#r8(CC_STATUS) !== 0; i++) {
      // The model device resets synchronously; the loop bounds a device that never does.
    }
    if (this.#r8(CC_STATUS) !== 0) throw sysErr("EIO", `${this.pci.name}: device did not reset`);
  }

  deviceFeatures(): bigint {
    this.#w32(CC_DFSELECT, 0);
    const lo = this.#r32(CC_DF);
    this.#w32(CC_DFSELECT, 1);
    const hi = this.#r32(CC_DF);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** vp_transport_features + virtio_finalize_features: write, set FEATURES_OK, re-read. */
  negotiate(driverFeatures: bigint): void {
    const dev = this.deviceFeatures();
    if (!bit(dev, VIRTIO_F_VERSION_1)) throw sysErr("ENODEV", `${this.pci.name}: device is not modern (no VERSION_1)`);
    let want = dev & driverFeatures;
    // Transport bits the core keeps when offered.
    for (const b of [VIRTIO_RING_F_EVENT_IDX, VIRTIO_F_VERSION_1, VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_ADMIN_VQ]) if (bit(dev, b)) want |= 1n << BigInt(b);
    // Bit 37 only if the PCI function really has the SR-IOV capability (vp_transport_features).
    if (bit(dev, VIRTIO_F_SR_IOV) && this.pci.extCaps.has(PCI_EXT_CAP_ID_SRIOV)) want |= 1n << BigInt(VIRTIO_F_SR_IOV);
    this.#w32(CC_GFSELECT, 0);
    this.#w32(CC_GF, Number(want & 0xffffffffn));
    this.#w32(CC_GFSELECT, 1);
    this.#w32(CC_GF, Number(want >> 32n));
    this.addStatus(VIRTIO_STATUS_FEATURES_OK);
    if ((this.status & VIRTIO_STATUS_FEATURES_OK) === 0) {
      throw sysErr("ENODEV", `${this.pci.name}: device refused features 0x${want.toString(16)}`);
    }
    this.features = want;
  }

  has(featureBit: number): boolean {
    return bit(this.features, featureBit);
  }

  get numQueues(): number {
    return this.#r16(CC_NUM_QUEUES);
  }

  /** Enables MSI-X with entry 0 for configuration changes (vp_find_vqs_msix). */
  setupConfigVector(onConfig: () => void): void {
    this.#configHandlers.push(onConfig);
    this.msix.setup(0, () => {
      for (const h of this.#configHandlers) h();
    });
    this.msix.enable();
    this.#w16(CC_MSIX_CONFIG, 0);
    if (this.#r16(CC_MSIX_CONFIG) === VIRTIO_MSI_NO_VECTOR) throw sysErr("EBUSY", `${this.pci.name}: device refused the config vector`);
  }

  /**
   * Sets up queue `index` with its own MSI-X entry when the table has room, else sharing entry 0
   * with the configuration vector (Linux's fallback). Returns the queue.
   */
  setupQueue<T>(index: number, onInterrupt: () => void): SplitVirtqueue<T> {
    this.#w16(CC_Q_SELECT, index);
    const max = this.#r16(CC_Q_SIZE);
    if (max === 0 || this.#r16(CC_Q_ENABLE) !== 0) throw sysErr("ENOENT", `${this.pci.name}: queue ${index} unavailable`);
    let size = Math.min(max, MAX_QUEUE_SIZE);
    // Split rings need a power-of-two size (virtio 1.x §2.7).
    while ((size & (size - 1)) !== 0) size &= size - 1;
    this.#w16(CC_Q_SIZE, size);
    const noff = this.#r16(CC_Q_NOFF);
    const notifyAddr = this.notify.addr + noff * this.notifyMultiplier;
    const vq = new SplitVirtqueue<T>(index, size, this.memory, this.arena, this.pci.platform, notifyAddr);
    vq.eventIdx = this.has(VIRTIO_RING_F_EVENT_IDX);
    let entry = 0;
    if (this.#nextEntry < this.msix.size) {
      entry = this.msix.setup(this.#nextEntry++, onInterrupt);
    } else {
      this.#configHandlers.push(onInterrupt);
    }
    this.#w64(CC_Q_DESCLO, vq.desc);
    this.#w64(CC_Q_AVAILLO, vq.avail);
    this.#w64(CC_Q_USEDLO, vq.used);
    this.#w16(CC_Q_MSIX, entry);
    if (this.#r16(CC_Q_MSIX) === VIRTIO_MSI_NO_VECTOR) throw sysErr("EBUSY", `${this.pci.name}: device refused a vector for queue ${index}`);
    this.#w16(CC_Q_ENABLE, 1);
    this.queues.push(vq);
    return vq;
  }

  /** The admin queue's index and count, when VIRTIO_F_ADMIN_VQ was negotiated. */
  adminQueueIndex(): { index: number; num: number } | undefined {
    if (!this.has(VIRTIO_F_ADMIN_VQ)) return undefined;
    return { index: this.#r16(CC_ADMIN_Q_IDX), num: this.#r16(CC_ADMIN_Q_NUM) };
  }

  readConfig8(o: number): number {
    if (this.devcfg === undefined || o + 1 > this.devcfg.len) return 0;
    return this.pci.platform.mmioRead(this.devcfg.addr + o, 1);
  }
  readConfig16(o: number): number {
    if (this.devcfg === undefined || o + 2 > this.devcfg.len) return 0;
    return this.pci.platform.mmioRead(this.devcfg.addr + o, 2);
  }

  /** Tears down queues and vectors after a reset (vp_del_vqs). */
  teardown(): void {
    if (this.#tornDown) return;
    this.#tornDown = true;
    try {
      this.reset();
    } catch {
      // A device that does not reset is still torn down on our side.
    }
    this.queues.length = 0;
    this.msix.disable();
    this.arena.release();
    this.#configHandlers = [];
    this.#nextEntry = 1;
  }
}

/** virtio_pci: the PCI driver that binds vendor 0x1AF4 functions and hosts virtio drivers. */
export class VirtioPciDriver implements PciDriver {
  readonly name = "virtio-pci";
  readonly #virtioDrivers: VirtioDriver[] = [];
  readonly devices = new Map<PciDev, VirtioPciDevice>();
  readonly #usedIndexes = new Set<number>();

  constructor(
    readonly core: PciCore,
    readonly memory: GuestMemory,
    readonly alloc: GuestAllocator,
    readonly irq: InterruptController,
    readonly events: { onVirtioAdd(v: VirtioPciDevice): void; onVirtioRemove(v: VirtioPciDevice): void },
  ) {}

  registerVirtioDriver(d: VirtioDriver): void {
    this.#virtioDrivers.push(d);
  }

  match(dev: PciDev): boolean {
    // Modern-only IDs 0x1040..0x107f; transitional 0x1000..0x103f also carry the modern caps.
    return dev.vendor === 0x1af4 && dev.device >= 0x1000 && dev.device <= 0x107f;
  }

  probe(dev: PciDev): void {
    // virtio index: ida_alloc, the lowest free number.
    let index = 0;
    while (this.#usedIndexes.has(index)) index++;
    let vdev: VirtioPciDevice;
    try {
      vdev = new VirtioPciDevice(dev, index, this.memory, this.alloc, this.irq);
    } catch (e) {
      // Guest RAM for rings exhausted: the probe fails with -ENOMEM, the device stays unbound.
      if (e instanceof GuestMemoryError) throw sysErr("ENOMEM", `${dev.name}: no DMA memory for the device`);
      throw e;
    }
    this.#usedIndexes.add(index);
    this.devices.set(dev, vdev);
    this.events.onVirtioAdd(vdev);
    // register_virtio_device resets and acknowledges; a matching driver then probes.
    try {
      vdev.reset();
      vdev.addStatus(VIRTIO_STATUS_ACKNOWLEDGE);
      const drv = this.#virtioDrivers.find((d) => d.deviceId === vdev.deviceId);
      if (drv !== undefined) {
        vdev.addStatus(VIRTIO_STATUS_DRIVER);
        try {
          vdev.negotiate(drv.features);
          drv.probe(vdev);
          vdev.driver = drv;
        } catch (e) {
          vdev.addStatus(VIRTIO_STATUS_FAILED);
          vdev.teardown();
          if (e instanceof GuestMemoryError) throw sysErr("ENOMEM", `${dev.name}: no DMA memory for the driver`);
          throw e;
        }
      }
    } catch (e) {
      vdev.teardown();
      this.events.onVirtioRemove(vdev);
      this.devices.delete(dev);
      this.#usedIndexes.delete(index);
      throw e;
    }
  }

  remove(dev: PciDev): void {
    const vdev = this.devices.get(dev);
    if (vdev === undefined) return;
    // virtio_pci_remove disables SR-IOV first, then the virtio device goes.
    if (this.core.sriov.has(dev)) this.core.disableSriov(dev);
    vdev.driver?.remove(vdev);
    vdev.driver = undefined;
    vdev.teardown();
    this.events.onVirtioRemove(vdev);
    this.devices.delete(dev);
    this.#usedIndexes.delete(vdev.index);
  }

  /** virtio_pci_sriov_configure (reference/pci-sriov.md §10). */
  sriovConfigure(dev: PciDev, numVfs: number): number {
    const vdev = this.devices.get(dev);
    if (vdev === undefined) throw sysErr("ENODEV");
    if ((vdev.status & VIRTIO_STATUS_DRIVER_OK) === 0) throw sysErr("EBUSY", `${dev.name}: virtio device is not DRIVER_OK`);
    if (!vdev.has(VIRTIO_F_SR_IOV)) throw sysErr("EINVAL", `${dev.name}: VIRTIO_F_SR_IOV not negotiated`);
    // pci_vfs_assigned: no VF is ever assigned to a nested guest in the model, so no -EPERM.
    if (numVfs === 0) {
      this.core.disableSriov(dev);
      return 0;
    }
    this.core.enableSriov(dev, numVfs);
    return numVfs;
  }
}

/**
 * The virtio 1.x modern PCI transport (virtio 1.3 §4.1) over a src/pci PciFunction.
 *
 * Everything lives in one 64-bit memory BAR, described to the driver by vendor-specific
 * capabilities (cap id 0x09, struct virtio_pci_cap):
 *
 *   0x0000  common configuration   (struct virtio_pci_common_cfg, 0x40 bytes)
 *   0x1000  ISR status             (1 byte, read clears)
 *   0x1800  device configuration   (device-specific, up to 0x800 bytes)
 *   0x2000  notifications          (queue q at 0x2000 + q * 4: notify_off = q, multiplier 4)
 *   0x3000  MSI-X table, 0x3800 PBA (served by src/pci's MsixCapability)
 *
 * A fifth capability (VIRTIO_PCI_CAP_PCI_CFG, §4.1.4.9) is a window in configuration space onto
 * those structures, for software that cannot map the BAR.
 *
 * 16 KiB in all, so a VF BAR of 16 KiB holds a vVF's registers too.
 *
 * The transport owns the device status state machine, feature negotiation, queue configuration,
 * interrupts and the admin virtqueue; device logic (VirtioDevice) never sees a register.
 * Guest writes never throw: a write the specification forbids is ignored (or answered with
 * DEVICE_NEEDS_RESET) and counted in `stats`.
 */
import { VpfError } from "../base/index.js";
import type { GuestMemory } from "../memory/index.js";
import type { AccessWidth } from "../pci/platform.js";
import type { PciFunction } from "../pci/function.js";
import type { MsixCapability } from "../pci/msix.js";
import { PCI_CAP_ID_VNDR, PCI_EXT_CAP_ID_SRIOV } from "../pci/regs.js";
import { AdminCommandRegistry, type AdminGroup } from "./admin.js";
import {
  COMMON_ADM_Q_IDX,
  COMMON_ADM_Q_NUM,
  COMMON_CFGGENERATION,
  COMMON_CFG_SIZE,
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
  COMMON_Q_NDATA,
  COMMON_Q_NOFF,
  COMMON_Q_RESET,
  COMMON_Q_SELECT,
  COMMON_Q_SIZE,
  COMMON_Q_USEDHI,
  COMMON_Q_USEDLO,
  COMMON_STATUS,
  VIRTIO_ADMIN_GROUP_TYPE_SRIOV,
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_ADMIN_VQ,
  VIRTIO_F_SR_IOV,
  VIRTIO_F_VERSION_1,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_PCI_CAP_COMMON_CFG,
  VIRTIO_PCI_CAP_DEVICE_CFG,
  VIRTIO_PCI_CAP_ISR_CFG,
  VIRTIO_PCI_CAP_NOTIFY_CFG,
  VIRTIO_PCI_CAP_PCI_CFG,
  VIRTIO_PCI_ISR_CONFIG,
  VIRTIO_PCI_ISR_QUEUE,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  bit,
} from "./constants.js";
import { SplitQueueDevice } from "./device-queue.js";
import type { ActivateContext, VirtioDevice } from "./device.js";
import { MAX_QUEUE_SIZE, VirtqueueError } from "./ring.js";

/** A transport built wrongly by device-side code (never raised by guest accesses). */
export class VirtioTransportError extends VpfError {}

/** Bytes of the memory BAR that holds every virtio structure and the MSI-X table. */
export const VIRTIO_PCI_BAR_SIZE = 0x4000;
export const VIRTIO_PCI_COMMON_OFFSET = 0x0000;
export const VIRTIO_PCI_ISR_OFFSET = 0x1000;
export const VIRTIO_PCI_DEVICE_OFFSET = 0x1800;
export const VIRTIO_PCI_DEVICE_MAX = 0x800;
export const VIRTIO_PCI_NOTIFY_OFFSET = 0x2000;
export const VIRTIO_PCI_NOTIFY_LENGTH = 0x1000;
export const VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER = 4;
export const VIRTIO_PCI_MSIX_TABLE_OFFSET = 0x3000;
export const VIRTIO_PCI_MSIX_PBA_OFFSET = 0x3800;
/** The MSI-X table fits 0x800 bytes: 128 vectors of 16 bytes. */
export const VIRTIO_PCI_MAX_VECTORS = 128;

// struct virtio_pci_cap (§4.1.4): cap_vndr, cap_next, cap_len, cfg_type, bar, id, padding[2],
// le32 offset, le32 length; struct virtio_pci_cfg_cap (§4.1.4.9) adds u8 pci_cfg_data[4].
export const VIRTIO_PCI_CAP_BAR = 4;
export const VIRTIO_PCI_CAP_OFFSET = 8;
export const VIRTIO_PCI_CAP_LENGTH = 12;
export const VIRTIO_PCI_CFG_DATA = 16;
/** Bytes of struct virtio_pci_cfg_cap. */
export const VIRTIO_PCI_CFG_CAP_SIZE = 20;

/** The negotiated configuration of one queue, as an external data plane needs it. */
export interface QueueInfo {
  readonly index: number;
  readonly admin: boolean;
  readonly enabled: boolean;
  readonly size: number;
  readonly descAddr: number;
  readonly availAddr: number;
  readonly usedAddr: number;
  readonly msixVector: number;
  readonly eventIdx: boolean;
  readonly indirect: boolean;
}

export type TransportEvent =
  | { readonly kind: "status"; readonly from: number; readonly to: number }
  /** DRIVER_OK was set: the enabled queues' configuration is final. */
  | { readonly kind: "driver-ok"; readonly features: bigint; readonly queues: readonly QueueInfo[] }
  /** A queue was enabled after DRIVER_OK. */
  | { readonly kind: "queue-enabled"; readonly queue: QueueInfo }
  | { readonly kind: "notify"; readonly queue: number }
  | { readonly kind: "needs-reset"; readonly reason: string }
  | { readonly kind: "reset" };

export interface TransportStats {
  /** Status writes that break §2.1/§3.1.1 ordering or clear bits (ignored). */
  invalidStatusWrites: number;
  /** FEATURES_OK refused because the driver accepted features not offered (or broke dependencies). */
  featuresRefused: number;
  /** driver_feature writes outside DRIVER..FEATURES_OK (ignored). */
  featureWritesIgnored: number;
  /** Queue register writes to an enabled or nonexistent queue, bad sizes, queue_enable = 0. */
  queueWritesIgnored: number;
  /** Register accesses of the wrong width or offset. */
  badAccesses: number;
  /**
   * pci_cfg_data accesses ignored because cap.bar/offset/length do not name 1, 2 or 4 aligned
   * bytes inside a structure of another virtio capability (§4.1.4.9.2).
   */
  pciCfgIgnored: number;
  /** Notifications for no queue, before DRIVER_OK, or without Bus Master Enable. */
  badNotifications: number;
  needsReset: number;
  /** VpfErrors the device raised while serving a guest write (each also sets DEVICE_NEEDS_RESET). */
  deviceErrors: number;
  resets: number;
  interruptsSent: number;
  /** MSI-X masked or Bus Master off: the message went to the PBA. */
  interruptsPending: number;
  /** MSI-X disabled or NO_VECTOR: only the ISR bit records it (INTx is not modelled). */
  interruptsDropped: number;
}

export interface VirtioPciTransportOptions {
  readonly fn: PciFunction;
  readonly device: VirtioDevice;
  readonly memory: GuestMemory;
  /** The memory BAR all structures live in (defined by the caller, or by the SR-IOV PF for a VF). */
  readonly bar: number;
  readonly msix?: MsixCapability;
  /** Offer VIRTIO_F_ADMIN_VQ with one admin queue after the device's queues. */
  readonly adminQueue?: boolean;
  readonly adminQueueSize?: number;
  /** Offer VIRTIO_RING_F_INDIRECT_DESC / VIRTIO_RING_F_EVENT_IDX (default both). */
  readonly indirect?: boolean;
  readonly eventIdx?: boolean;
}

interface QueueState {
  size: number;
  maxSize: number;
  vector: number;
  enabled: boolean;
  // Address registers as written, 32 bits each; the address is formed at activation.
  descLo: number;
  descHi: number;
  availLo: number;
  availHi: number;
  usedLo: number;
  usedHi: number;
  dev: SplitQueueDevice | undefined;
}

// SR-IOV extended capability registers (PCIe SR-IOV §3.3): Control and NumVFs.
const SRIOV_CTRL = 0x08;
const SRIOV_CTRL_VFE = 0x1;
const SRIOV_NUM_VF = 0x10;

const TWO_32 = 0x1_0000_0000;

export class VirtioPciTransport {
  readonly fn: PciFunction;
  readonly device: VirtioDevice;
  readonly memory: GuestMemory;
  readonly bar: number;
  readonly msix: MsixCapability | undefined;
  readonly admin: AdminCommandRegistry | undefined;
  readonly adminQueueIndex: number;
  readonly stats: TransportStats = {
    invalidStatusWrites: 0, featuresRefused: 0, featureWritesIgnored: 0, queueWritesIgnored: 0, badAccesses: 0, pciCfgIgnored: 0,
    badNotifications: 0, needsReset: 0, deviceErrors: 0, resets: 0, interruptsSent: 0, interruptsPending: 0, interruptsDropped: 0,
  };
  /** Why DEVICE_NEEDS_RESET was last set. */
  lastError: string | undefined;
  /** Configuration-space offset of the VIRTIO_PCI_CAP_PCI_CFG capability (§4.1.4.9). */
  readonly pciCfgCap: number;
  /** BAR ranges described by the other virtio capabilities: what the PCI_CFG window may reach. */
  readonly #structures: { readonly offset: number; readonly length: number }[] = [];
  readonly #ringFeatures: bigint;
  readonly #queues: QueueState[];
  readonly #live: (SplitQueueDevice | undefined)[];
  readonly #listeners: ((e: TransportEvent) => void)[] = [];
  #status = 0;
  #dfSelect = 0;
  #gfSelect = 0;
  #driverFeatures = 0n;
  #negotiated = 0n;
  #configVector = VIRTIO_MSI_NO_VECTOR;
  #generation = 0;
  #isr = 0;
  #queueSelect = 0;

  constructor(opts: VirtioPciTransportOptions) {
    this.fn = opts.fn;
    this.device = opts.device;
    this.memory = opts.memory;
    this.bar = opts.bar;
    this.msix = opts.msix;
    this.#ringFeatures = (opts.indirect ?? true ? bit(VIRTIO_RING_F_INDIRECT_DESC) : 0n) | (opts.eventIdx ?? true ? bit(VIRTIO_RING_F_EVENT_IDX) : 0n);
    const n = opts.device.numQueues;
    this.adminQueueIndex = opts.adminQueue === true ? n : -1;
    this.#queues = [];
    for (let q = 0; q < n; q++) this.#queues.push(freshQueue(Math.min(MAX_QUEUE_SIZE, opts.device.queueMaxSize(q))));
    if (opts.adminQueue === true) this.#queues.push(freshQueue(opts.adminQueueSize ?? 64));
    this.#live = new Array<SplitQueueDevice | undefined>(n).fill(undefined);
    this.admin = opts.adminQueue === true ? new AdminCommandRegistry([this.#sriovGroup()]) : undefined;
    this.device.bind({ configChanged: () => this.#signalConfig() });
    this.pciCfgCap = this.#installCapabilities();
    this.fn.onReset(() => {
      this.reset();
      return undefined;
    });
  }

  // ------------------------------------------------------------------ public state

  get status(): number {
    return this.#status;
  }
  /** Features offered now: the device's, ring features, VERSION_1, ADMIN_VQ, and SR_IOV iff the
   * function carries an SR-IOV capability (so the hypervisor may add it after construction). */
  get offeredFeatures(): bigint {
    let f = this.device.offeredFeatures() | this.#ringFeatures | bit(VIRTIO_F_VERSION_1);
    if (this.admin !== undefined) f |= bit(VIRTIO_F_ADMIN_VQ);
    if (this.fn.findExtendedCapability(PCI_EXT_CAP_ID_SRIOV) !== undefined) f |= bit(VIRTIO_F_SR_IOV);
    return f;
  }
  /** Features accepted at FEATURES_OK (0 before). */
  get negotiatedFeatures(): bigint {
    return this.#negotiated;
  }
  get configGeneration(): number {
    return this.#generation;
  }
  get driverOk(): boolean {
    return (this.#status & VIRTIO_CONFIG_S_DRIVER_OK) !== 0;
  }

  /** Listens to status changes, DRIVER_OK, queue enables, notifications and resets. */
  onEvent(listener: (e: TransportEvent) => void): void {
    this.#listeners.push(listener);
  }

  /** The configuration of queue q (device queues, then the admin queue). */
  queueInfo(q: number): QueueInfo | undefined {
    const s = this.#queues[q];
    if (s === undefined) return undefined;
    return {
      index: q, admin: q === this.adminQueueIndex, enabled: s.enabled, size: s.size, descAddr: addr(s.descHi, s.descLo), availAddr: addr(s.availHi, s.availLo), usedAddr: addr(s.usedHi, s.usedLo),
      msixVector: s.vector, eventIdx: (this.#negotiated & bit(VIRTIO_RING_F_EVENT_IDX)) !== 0n,
      indirect: (this.#negotiated & bit(VIRTIO_RING_F_INDIRECT_DESC)) !== 0n,
    };
  }
  get queueCount(): number {
    return this.#queues.length;
  }
  /** The device-side ring of queue q once DRIVER_OK made it live. */
  deviceQueue(q: number): SplitQueueDevice | undefined {
    return this.#queues[q]?.dev;
  }

  /**
   * Interrupts the driver for queue q if its ring asks for it (what an external data plane calls
   * after publishing used entries; vhost's call eventfd).
   */
  signalQueue(q: number): void {
    const s = this.#queues[q];
    // Judge by used.idx in guest memory, so that an external data plane's entries count too.
    if (s?.dev === undefined || !s.dev.needsInterrupt(s.dev.publishedUsedIdx())) return;
    this.#isr |= VIRTIO_PCI_ISR_QUEUE;
    this.#sendVector(s.vector);
  }

  /** Sets DEVICE_NEEDS_RESET and sends a configuration interrupt (§2.1.2, §4.1.5.4). */
  needsReset(reason: string): void {
    this.lastError = reason;
    if ((this.#status & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0) return;
    this.stats.needsReset++;
    this.#status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    this.#emit({ kind: "needs-reset", reason });
    this.#signalConfig();
  }

  /** Device reset (driver writes 0 to device_status, or a function-level reset). */
  reset(): void {
    this.stats.resets++;
    this.device.reset();
    this.admin?.reset();
    for (const s of this.#queues) Object.assign(s, freshQueue(s.maxSize));
    this.#live.fill(undefined);
    this.#status = 0;
    this.#dfSelect = 0;
    this.#gfSelect = 0;
    this.#driverFeatures = 0n;
    this.#negotiated = 0n;
    this.#configVector = VIRTIO_MSI_NO_VECTOR;
    this.#isr = 0;
    this.#queueSelect = 0;
    this.#emit({ kind: "reset" });
  }

  // ------------------------------------------------------------------ capabilities and BAR

  /** Adds the vendor capabilities and maps the BAR windows; returns the PCI_CFG capability's offset. */
  #installCapabilities(): number {
    const fn = this.fn;
    const cfgLen = Math.max(4, Math.ceil(this.device.configSize / 4) * 4);
    if (cfgLen > VIRTIO_PCI_DEVICE_MAX) {
      throw new VirtioTransportError("VIRTIO_CONFIG_TOO_LARGE", `device configuration of ${this.device.configSize} bytes exceeds ${VIRTIO_PCI_DEVICE_MAX}`);
    }
    const caps: [number, number, number][] = [
      [VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFFSET, COMMON_CFG_SIZE],
      [VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFFSET, VIRTIO_PCI_NOTIFY_LENGTH],
      [VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFFSET, 1],
      [VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFFSET, cfgLen],
    ];
    for (const [type, offset, length] of caps) {
      const capLen = type === VIRTIO_PCI_CAP_NOTIFY_CFG ? 20 : 16;
      const at = fn.addCapability(PCI_CAP_ID_VNDR, capLen);
      // struct virtio_pci_cap (§4.1.4): cap_vndr, cap_next (set by the allocator), cap_len,
      // cfg_type, bar, id, padding[2], le32 offset, le32 length [, le32 notify_off_multiplier].
      fn.config.setU8(at + 2, capLen);
      fn.config.setU8(at + 3, type);
      fn.config.setU8(at + 4, this.bar);
      fn.config.setU8(at + 5, 0);
      fn.config.setU32(at + 8, offset);
      fn.config.setU32(at + 12, length);
      if (type === VIRTIO_PCI_CAP_NOTIFY_CFG) fn.config.setU32(at + 16, VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER);
      this.#structures.push({ offset, length });
    }
    const pciCfg = this.#installPciCfg();
    fn.mapBarRegion(this.bar, VIRTIO_PCI_COMMON_OFFSET, COMMON_CFG_SIZE, {
      read: (o, w) => this.#commonRead(o, w),
      write: (o, w, v) => this.#commonWrite(o, w, v),
    });
    fn.mapBarRegion(this.bar, VIRTIO_PCI_ISR_OFFSET, 4, {
      read: (o) => {
        if (o !== 0) return 0;
        // §4.1.4.5: reading the ISR status clears it.
        const v = this.#isr;
        this.#isr = 0;
        return v;
      },
      write: () => {
        this.stats.badAccesses++;
      },
    });
    fn.mapBarRegion(this.bar, VIRTIO_PCI_DEVICE_OFFSET, cfgLen, {
      read: (o, w) => (o + w <= this.device.configSize ? this.device.readConfig(o, w) : 0),
      write: (o, w, v) => {
        if (o + w <= this.device.configSize) this.device.writeConfig(o, w, v);
        else this.stats.badAccesses++;
      },
    });
    fn.mapBarRegion(this.bar, VIRTIO_PCI_NOTIFY_OFFSET, VIRTIO_PCI_NOTIFY_LENGTH, {
      read: () => 0,
      write: (o) => this.#notify(o),
    });
    return pciCfg;
  }

  /**
   * VIRTIO_PCI_CAP_PCI_CFG (§4.1.4.9), last in the list as QEMU places it. "The device MUST
   * present at least one VIRTIO_PCI_CAP_PCI_CFG capability" (§4.1.4.9.1). cap.bar, cap.offset,
   * cap.length and pci_cfg_data are read-write for the driver; they power on as 0 (length 0: no
   * window until the driver sets one) and a function-level reset brings that back.
   */
  #installPciCfg(): number {
    const fn = this.fn;
    const at = fn.addCapability(PCI_CAP_ID_VNDR, VIRTIO_PCI_CFG_CAP_SIZE);
    fn.config.setU8(at + 2, VIRTIO_PCI_CFG_CAP_SIZE);
    fn.config.setU8(at + 3, VIRTIO_PCI_CAP_PCI_CFG);
    fn.config.setWmask(at + VIRTIO_PCI_CAP_BAR, 1, 0xff);
    fn.config.setWmask(at + VIRTIO_PCI_CAP_OFFSET, 4, 0xffff_ffff);
    fn.config.setWmask(at + VIRTIO_PCI_CAP_LENGTH, 4, 0xffff_ffff);
    fn.config.setWmask(at + VIRTIO_PCI_CFG_DATA, 4, 0xffff_ffff);
    const data = at + VIRTIO_PCI_CFG_DATA;
    // "Upon detecting driver write access to pci_cfg_data, the device MUST execute a write access
    // at offset cap.offset at BAR selected by cap.bar using the first cap.length bytes from
    // pci_cfg_data" (§4.1.4.9.1): the generic store has put the bytes there already.
    fn.onConfigWrite(data, 4, () => {
      const w = this.#pciCfgWindow(at);
      if (w !== undefined) fn.barWrite(w.bar, w.offset, w.length, fn.config.read(data, w.length));
      return undefined;
    });
    // "Upon detecting driver read access to pci_cfg_data, the device MUST execute a read access of
    // length cap.length at offset cap.offset at BAR selected by cap.bar and store the first
    // cap.length bytes in pci_cfg_data" (§4.1.4.9.1), before the read returns them.
    fn.onConfigRead(data, 4, () => {
      const w = this.#pciCfgWindow(at);
      if (w !== undefined) fn.config.poke(data, w.length, fn.barRead(w.bar, w.offset, w.length));
    });
    return at;
  }

  /**
   * The BAR access the PCI_CFG capability names now, or undefined (counted) when the device
   * ignores it. The specification puts these rules on the driver (§4.1.4.9.2: cap.offset a
   * multiple of cap.length; cap.bar, cap.offset and cap.length address cap.length bytes within a
   * BAR range of another virtio capability) and says nothing of the device; like QEMU (lengths
   * other than 1, 2, 4) and lguest (alignment, BAR bounds) the device then does nothing: no BAR
   * access, pci_cfg_data unchanged by a read. BAR decoding (Command Memory) is not required:
   * the window exists for software that cannot map the BAR.
   */
  #pciCfgWindow(at: number): { bar: number; offset: number; length: AccessWidth } | undefined {
    const c = this.fn.config;
    const bar = c.read(at + VIRTIO_PCI_CAP_BAR, 1);
    const offset = c.read(at + VIRTIO_PCI_CAP_OFFSET, 4);
    const length = c.read(at + VIRTIO_PCI_CAP_LENGTH, 4);
    if ((length === 1 || length === 2 || length === 4) && offset % length === 0 && bar === this.bar) {
      for (const r of this.#structures) {
        if (offset >= r.offset && offset + length <= r.offset + r.length) return { bar, offset, length };
      }
    }
    this.stats.pciCfgIgnored++;
    return undefined;
  }

  #sriovGroup(): AdminGroup {
    const fn = this.fn;
    const sriov = (): number | undefined => fn.findExtendedCapability(PCI_EXT_CAP_ID_SRIOV);
    return {
      groupType: VIRTIO_ADMIN_GROUP_TYPE_SRIOV,
      supported: () => sriov() !== undefined,
      active: () => {
        const at = sriov();
        return at !== undefined && (fn.configRead(at + SRIOV_CTRL, 2) & SRIOV_CTRL_VFE) !== 0;
      },
      memberValid: (id) => {
        const at = sriov();
        return at !== undefined && id >= 1 && id <= fn.configRead(at + SRIOV_NUM_VF, 2);
      },
    };
  }

  // ------------------------------------------------------------------ common configuration

  #selected(): QueueState | undefined {
    // The admin queue exists for the driver only once VIRTIO_F_ADMIN_VQ is negotiated (§2.13).
    if (this.#queueSelect === this.adminQueueIndex && (this.#negotiated & bit(VIRTIO_F_ADMIN_VQ)) === 0n) return undefined;
    return this.#queues[this.#queueSelect];
  }

  #commonRead(off: number, width: AccessWidth): number {
    // §4.1.3.1: the driver accesses each field with its own width; 64-bit fields as two dwords.
    const expect = fieldWidth(off);
    if (expect !== width) {
      this.stats.badAccesses++;
      return 0;
    }
    const q = this.#selected();
    switch (off) {
      case COMMON_DFSELECT: return this.#dfSelect;
      case COMMON_DF: return this.#dfSelect <= 1 ? Number((this.offeredFeatures >> BigInt(32 * this.#dfSelect)) & 0xffff_ffffn) : 0;
      case COMMON_GFSELECT: return this.#gfSelect;
      case COMMON_GF: return this.#gfSelect <= 1 ? Number((this.#driverFeatures >> BigInt(32 * this.#gfSelect)) & 0xffff_ffffn) : 0;
      case COMMON_MSIX: return this.#configVector;
      case COMMON_NUMQ: return this.device.numQueues; // admin queues excluded (§4.1.4.3)
      case COMMON_STATUS: return this.#status;
      case COMMON_CFGGENERATION: return this.#generation;
      case COMMON_Q_SELECT: return this.#queueSelect;
      // §4.1.4.3: a queue that does not exist reads size 0.
      case COMMON_Q_SIZE: return q?.size ?? 0;
      case COMMON_Q_MSIX: return q?.vector ?? VIRTIO_MSI_NO_VECTOR;
      case COMMON_Q_ENABLE: return q?.enabled === true ? 1 : 0;
      case COMMON_Q_NOFF: return q === undefined ? 0 : this.#queueSelect;
      case COMMON_Q_DESCLO: return q?.descLo ?? 0;
      case COMMON_Q_DESCHI: return q?.descHi ?? 0;
      case COMMON_Q_AVAILLO: return q?.availLo ?? 0;
      case COMMON_Q_AVAILHI: return q?.availHi ?? 0;
      case COMMON_Q_USEDLO: return q?.usedLo ?? 0;
      case COMMON_Q_USEDHI: return q?.usedHi ?? 0;
      case COMMON_Q_NDATA: return 0;
      case COMMON_Q_RESET: return 0;
      case COMMON_ADM_Q_IDX: return this.admin !== undefined ? this.adminQueueIndex : 0;
      case COMMON_ADM_Q_NUM: return this.admin !== undefined ? 1 : 0;
      default: return 0;
    }
  }

  #commonWrite(off: number, width: AccessWidth, value: number): void {
    if (fieldWidth(off) !== width) {
      this.stats.badAccesses++;
      return;
    }
    switch (off) {
      case COMMON_DFSELECT: this.#dfSelect = value >>> 0; return;
      case COMMON_GFSELECT: this.#gfSelect = value >>> 0; return;
      case COMMON_GF: return this.#writeDriverFeatures(value >>> 0);
      case COMMON_MSIX: this.#configVector = this.#vector(value); return;
      case COMMON_STATUS: return this.#writeStatus(value & 0xff);
      case COMMON_Q_SELECT: this.#queueSelect = value & 0xffff; return;
      case COMMON_Q_MSIX: {
        const q = this.#selected();
        if (q === undefined) this.stats.queueWritesIgnored++;
        else q.vector = this.#vector(value);
        return;
      }
      case COMMON_Q_ENABLE: return this.#writeQueueEnable(value & 0xffff);
      case COMMON_Q_SIZE:
      case COMMON_Q_DESCLO:
      case COMMON_Q_DESCHI:
      case COMMON_Q_AVAILLO:
      case COMMON_Q_AVAILHI:
      case COMMON_Q_USEDLO:
      case COMMON_Q_USEDHI:
        return this.#writeQueueField(off, value >>> 0);
      default:
        // Read-only fields (device_feature, num_queues, config_generation, queue_notify_off,
        // queue_notify_data, admin fields) and queue_reset without VIRTIO_F_RING_RESET.
        this.stats.badAccesses++;
    }
  }

  /** §4.1.5.1.2: a vector the device cannot map reads back as NO_VECTOR. */
  #vector(v: number): number {
    const n = this.msix?.vectors ?? 0;
    return v === VIRTIO_MSI_NO_VECTOR || v < n ? v & 0xffff : VIRTIO_MSI_NO_VECTOR;
  }

  #writeDriverFeatures(value: number): void {
    // §3.1.1: features are written after DRIVER and before FEATURES_OK; later writes are ignored.
    const s = this.#status;
    if ((s & VIRTIO_CONFIG_S_DRIVER) === 0 || (s & VIRTIO_CONFIG_S_FEATURES_OK) !== 0 || this.#gfSelect > 1) {
      this.stats.featureWritesIgnored++;
      return;
    }
    const shift = BigInt(32 * this.#gfSelect);
    this.#driverFeatures = (this.#driverFeatures & ~(0xffff_ffffn << shift)) | (BigInt(value) << shift);
  }

  /**
   * The status state machine (§2.1, §3.1.1), Firecracker-style: writing 0 resets; otherwise the
   * driver may only add bits, in order ACKNOWLEDGE → DRIVER → FEATURES_OK → DRIVER_OK, and FAILED
   * at any time. "The driver MUST NOT clear a device status bit" — such writes are ignored.
   */
  #writeStatus(value: number): void {
    if (value === 0) {
      this.reset();
      return;
    }
    const cur = this.#status;
    // DEVICE_NEEDS_RESET belongs to the device: the driver neither sets nor clears it.
    let next = (value & ~VIRTIO_CONFIG_S_NEEDS_RESET) | (cur & VIRTIO_CONFIG_S_NEEDS_RESET);
    const added = next & ~cur;
    const invalid =
      (cur & ~next) !== 0 ||
      (value & 0x30) !== 0 || // undefined bits (0x10 is SUSPEND, which is not offered)
      ((added & VIRTIO_CONFIG_S_DRIVER) !== 0 && (next & VIRTIO_CONFIG_S_ACKNOWLEDGE) === 0) ||
      ((added & VIRTIO_CONFIG_S_FEATURES_OK) !== 0 && (next & VIRTIO_CONFIG_S_DRIVER) === 0) ||
      // DRIVER_OK only after the device has kept FEATURES_OK (the driver re-reads it, §3.1.1 step 6).
      ((added & VIRTIO_CONFIG_S_DRIVER_OK) !== 0 && (cur & VIRTIO_CONFIG_S_FEATURES_OK) === 0);
    if (invalid) {
      this.stats.invalidStatusWrites++;
      return;
    }
    if ((added & VIRTIO_CONFIG_S_FEATURES_OK) !== 0) {
      // §2.2.2: the device refuses a subset it does not support by leaving FEATURES_OK clear;
      // the driver re-reads the status and sees it.
      const why = this.#checkFeatures(this.#driverFeatures);
      if (why !== undefined) {
        this.stats.featuresRefused++;
        this.lastError = why;
        next &= ~VIRTIO_CONFIG_S_FEATURES_OK;
      } else {
        this.#negotiated = this.#driverFeatures;
      }
    }
    this.#status = next;
    if (next !== cur) this.#emit({ kind: "status", from: cur, to: next });
    if ((added & VIRTIO_CONFIG_S_DRIVER_OK) !== 0) this.#activate();
    if ((added & VIRTIO_CONFIG_S_FAILED) !== 0) this.lastError = "driver set FAILED";
  }

  #checkFeatures(f: bigint): string | undefined {
    const unoffered = f & ~this.offeredFeatures;
    if (unoffered !== 0n) return `driver accepted features not offered: 0x${unoffered.toString(16)}`;
    // §6.1: a modern device may refuse a driver that does not accept VERSION_1; we do.
    if ((f & bit(VIRTIO_F_VERSION_1)) === 0n) return "driver did not accept VIRTIO_F_VERSION_1";
    return this.device.validateFeatures(f);
  }

  #writeQueueField(off: number, value: number): void {
    const q = this.#selected();
    // §4.1.4.3.2: queue fields are written before queue_enable; afterwards they are fixed.
    if (q === undefined || q.enabled || (this.#status & VIRTIO_CONFIG_S_FEATURES_OK) === 0) {
      this.stats.queueWritesIgnored++;
      return;
    }
    switch (off) {
      case COMMON_Q_SIZE: {
        const v = value & 0xffff;
        // Split rings: a power of two no larger than the device's maximum.
        if (v === 0 || v > q.maxSize || (v & (v - 1)) !== 0) this.stats.queueWritesIgnored++;
        else q.size = v;
        return;
      }
      case COMMON_Q_DESCLO: q.descLo = value; return;
      case COMMON_Q_DESCHI: q.descHi = value; return;
      case COMMON_Q_AVAILLO: q.availLo = value; return;
      case COMMON_Q_AVAILHI: q.availHi = value; return;
      case COMMON_Q_USEDLO: q.usedLo = value; return;
      case COMMON_Q_USEDHI: q.usedHi = value; return;
    }
  }

  #writeQueueEnable(value: number): void {
    const q = this.#selected();
    // §4.1.4.3.2: "The driver MUST NOT write a 0 to queue_enable." Enabling twice changes nothing.
    if (q === undefined || value !== 1 || q.enabled || (this.#status & VIRTIO_CONFIG_S_FEATURES_OK) === 0) {
      this.stats.queueWritesIgnored++;
      return;
    }
    q.enabled = true;
    if (this.driverOk) {
      const idx = this.#queueSelect;
      this.#startQueue(idx);
      if (idx < this.#live.length) {
        this.#live[idx] = q.dev;
        if (q.dev !== undefined) this.#guarded("queue enable", () => this.device.queueEnabled(idx));
      }
      const info = this.queueInfo(idx);
      if (info !== undefined) this.#emit({ kind: "queue-enabled", queue: info });
    }
  }

  #startQueue(idx: number): void {
    const q = this.#queues[idx];
    if (q === undefined || !q.enabled) return;
    const info = this.queueInfo(idx);
    if (info === undefined) return;
    try {
      q.dev = new SplitQueueDevice(this.memory, info, undefined, (e) => this.needsReset(`queue ${idx}: ${e.code}: ${e.message}`));
    } catch (e) {
      if (!(e instanceof VirtqueueError)) throw e;
      q.dev = undefined;
      this.needsReset(`queue ${idx}: ${e.code}: ${e.message}`);
    }
  }

  #activate(): void {
    for (let i = 0; i < this.#queues.length; i++) this.#startQueue(i);
    for (let i = 0; i < this.#live.length; i++) this.#live[i] = this.#queues[i]?.dev;
    const ctx: ActivateContext = {
      memory: this.memory,
      features: this.#negotiated,
      queues: this.#live,
      signalUsed: (q) => this.signalQueue(q),
      signalConfig: () => this.#signalConfig(),
      needsReset: (reason) => this.needsReset(reason),
      dmaAllowed: () => this.fn.busMaster,
    };
    this.#guarded("activation", () => this.device.activate(ctx));
    const infos: QueueInfo[] = [];
    for (let i = 0; i < this.#queues.length; i++) {
      const info = this.queueInfo(i);
      if (info !== undefined && info.enabled) infos.push(info);
    }
    this.#emit({ kind: "driver-ok", features: this.#negotiated, queues: infos });
  }

  // ------------------------------------------------------------------ notifications, interrupts

  #notify(off: number): void {
    const idx = off / VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER;
    const q = this.#queues[idx];
    // Without Bus Master Enable the function may not touch guest memory (PCI 3.0 §6.2.2).
    if (!Number.isInteger(idx) || q === undefined || !this.driverOk || q.dev === undefined || !this.fn.busMaster) {
      this.stats.badNotifications++;
      return;
    }
    if (this.#listeners.length > 0) this.#emit({ kind: "notify", queue: idx });
    if (idx === this.adminQueueIndex) {
      if (this.admin !== undefined && this.admin.process(q.dev) > 0) this.signalQueue(idx);
      return;
    }
    this.#guarded(`queue ${idx} notification`, () => this.device.queueNotify(idx));
  }

  /**
   * Runs device logic on behalf of a guest register write. A VpfError from the device (a backend
   * that refuses, guest memory out of range) becomes DEVICE_NEEDS_RESET — a guest write never
   * throws out of the emulator. Anything else is a bug and propagates.
   */
  #guarded(what: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (!(e instanceof VpfError)) throw e;
      this.stats.deviceErrors++;
      this.needsReset(`${what}: ${e.code}: ${e.message}`);
    }
  }

  #signalConfig(): void {
    this.#generation = (this.#generation + 1) & 0xff;
    this.#isr |= VIRTIO_PCI_ISR_CONFIG;
    // No notifications before DRIVER_OK (§3.1.1); the generation still moves.
    if (this.driverOk) this.#sendVector(this.#configVector);
  }

  #sendVector(v: number): void {
    const m = this.msix;
    if (m === undefined || !m.enabled || v === VIRTIO_MSI_NO_VECTOR || v >= m.vectors) {
      this.stats.interruptsDropped++;
      return;
    }
    const r = m.notify(v);
    if (r === "sent") this.stats.interruptsSent++;
    else if (r === "pending") this.stats.interruptsPending++;
    else this.stats.interruptsDropped++;
  }

  #emit(e: TransportEvent): void {
    for (const l of this.#listeners) l(e);
  }
}

function freshQueue(maxSize: number): QueueState {
  return { size: maxSize, maxSize, vector: VIRTIO_MSI_NO_VECTOR, enabled: false, descLo: 0, descHi: 0, availLo: 0, availHi: 0, usedLo: 0, usedHi: 0, dev: undefined };
}

function fieldWidth(off: number): number {
  if (off === COMMON_STATUS || off === COMMON_CFGGENERATION) return 1;
  if (off < COMMON_MSIX) return off % 4 === 0 ? 4 : 0;
  if (off < COMMON_Q_DESCLO) return off % 2 === 0 ? 2 : 0;
  if (off < COMMON_Q_NDATA) return off % 4 === 0 ? 4 : 0;
  return off % 2 === 0 ? 2 : 0;
}

/**
 * A 64-bit address from its register halves. Guest-physical addresses are numbers below 2^53
 * (platform.ts); anything wider becomes -1, which the ring check refuses (VQ_BAD_ALIGNMENT).
 */
function addr(hi: number, lo: number): number {
  return hi > 0x1f_ffff ? -1 : hi * TWO_32 + lo;
}

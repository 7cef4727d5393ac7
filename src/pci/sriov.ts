import { PciError } from "./errors.js";
import {
  PciFunction, barEncoding, checkBarSpec, decodeBarAddress, decodeEpoch,
  type BarSpec, type PciEffect, type VfParent,
} from "./function.js";
import { PCI_EXT_CAP_ID_SRIOV } from "./regs.js";

// Register offsets inside the SR-IOV capability (PCIe SR-IOV 1.1 §3.3; pci_regs.h PCI_SRIOV_*).
export const PCI_SRIOV_CAP = 0x04;
export const PCI_SRIOV_CTRL = 0x08;
export const PCI_SRIOV_STATUS = 0x0a;
export const PCI_SRIOV_INITIAL_VF = 0x0c;
export const PCI_SRIOV_TOTAL_VF = 0x0e;
export const PCI_SRIOV_NUM_VF = 0x10;
export const PCI_SRIOV_FUNC_LINK = 0x12;
export const PCI_SRIOV_VF_OFFSET = 0x14;
export const PCI_SRIOV_VF_STRIDE = 0x16;
export const PCI_SRIOV_VF_DID = 0x1a;
export const PCI_SRIOV_SUP_PGSIZE = 0x1c;
export const PCI_SRIOV_SYS_PGSIZE = 0x20;
export const PCI_SRIOV_BAR = 0x24;
export const PCI_SRIOV_VFM = 0x3c;
export const PCI_EXT_CAP_SRIOV_SIZEOF = 0x40;

export const PCI_SRIOV_CTRL_VFE = 0x01;
export const PCI_SRIOV_CTRL_VFM = 0x02;
export const PCI_SRIOV_CTRL_INTR = 0x04;
export const PCI_SRIOV_CTRL_MSE = 0x08;
export const PCI_SRIOV_CTRL_ARI = 0x10;
export const PCI_SRIOV_STATUS_VFM = 0x01;
/** The page sizes every PF must support: 4K, 8K, 64K, 256K, 1M, 4M (SR-IOV §3.3.12). */
export const SRIOV_SUP_PGSIZE_MINREQ = 0x553;

export interface VfBarOptions extends BarSpec {
  /** VF BAR slot 0..5 (a 64-bit BAR also takes the next slot). */
  readonly index: number;
}

/** First VF Offset and VF Stride for a NumVFs / ARI Capable Hierarchy setting (SR-IOV §3.3.9, .10). */
export type SriovLayout = (numVfs: number, ariCapableHierarchy: boolean) => { firstVfOffset: number; vfStride: number };

export interface SriovOptions {
  /** TotalVFs, 1..65535; InitialVFs equals it (Linux refuses otherwise without VF Migration). */
  readonly totalVfs: number;
  readonly vfDeviceId: number;
  /** First VF Offset and VF Stride; required unless `layout` computes them. */
  readonly firstVfOffset?: number;
  readonly vfStride?: number;
  /** Recomputes offset and stride whenever NumVFs or ARI Capable Hierarchy changes. */
  readonly layout?: SriovLayout;
  /** Default 0x553; must contain every bit of 0x553. */
  readonly supportedPageSizes?: number;
  /** Function Dependency Link; default 0 (the function number of a PF at function 0). */
  readonly functionDependencyLink?: number;
  readonly vfBars?: readonly VfBarOptions[];
  readonly at?: number;
}

/** Properties of a VF created through SriovCapability.vfFunction. */
export interface VfFunctionOptions {
  readonly classCode: number;
  readonly revision?: number;
  readonly subsystemVendorId?: number;
  readonly subsystemId?: number;
}

function popcount32(v: number): number {
  let n = 0;
  for (let x = v >>> 0; x !== 0; x &= x - 1) n++;
  return n;
}

/**
 * The SR-IOV Extended Capability (PCIe SR-IOV 1.1 §3.3; pci-sriov.md §3 and §6), 64 bytes.
 *
 * Writable: Control VF Enable / VF MSE / ARI Capable Hierarchy, NumVFs, System Page Size, the VF
 * BARs; Status is RW1C. NumVFs is read-only while VF Enable is set; VF Enable cannot be set while
 * NumVFs > TotalVFs (QEMU's wmask rule); NumVFs is not clamped. VF MSE is stored and inert. A
 * write that changes VF Enable returns "vfs-enabled"/"vfs-disabled" and creates nothing.
 */
export class SriovCapability implements VfParent {
  readonly pf: PciFunction;
  readonly offset: number;
  readonly totalVfs: number;
  readonly vfDeviceId: number;
  readonly supportedPageSizes: number;
  readonly #layout: SriovLayout | undefined;
  readonly #vfBars: (BarSpec | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined];
  readonly #vfs = new Map<number, PciFunction>();
  #enabled = false;
  #enabledCount = 0;
  #lastNumVfs = 0;
  #lastAri = false;
  #pageSize = 1;

  constructor(pf: PciFunction, opts: SriovOptions) {
    const bad = (why: string, details?: Record<string, unknown>): never => {
      throw new PciError("PCI_BAD_SRIOV", `SR-IOV: ${why}`, details);
    };
    if (!pf.express) throw new PciError("PCI_NOT_EXPRESS", "PCI Express is required for an SR-IOV PF");
    if (pf.virtualFunction !== undefined) bad("a function cannot be both PF and VF");
    if (pf.headerType !== 0) bad("a PF has a type 0 header");
    const total = opts.totalVfs;
    if (!Number.isInteger(total) || total < 1 || total > 0xffff) bad(`TotalVFs ${total} is not 1..65535`);
    if (!Number.isInteger(opts.vfDeviceId) || opts.vfDeviceId < 0 || opts.vfDeviceId > 0xffff) bad(`VF Device ID ${opts.vfDeviceId} is not 16 bits`);
    const sup = opts.supportedPageSizes ?? SRIOV_SUP_PGSIZE_MINREQ;
    if (!Number.isInteger(sup) || sup < 0 || sup > 0xffff_ffff || (sup & SRIOV_SUP_PGSIZE_MINREQ) !== SRIOV_SUP_PGSIZE_MINREQ) {
      bad(`Supported Page Sizes 0x${sup.toString(16)} lacks the required 0x553 (SR-IOV §3.3.12)`);
    }
    const fdl = opts.functionDependencyLink ?? 0;
    if (!Number.isInteger(fdl) || fdl < 0 || fdl > 0xff) bad(`Function Dependency Link ${fdl} is not 8 bits`);
    if (opts.layout === undefined && (opts.firstVfOffset === undefined || opts.vfStride === undefined)) {
      bad("firstVfOffset and vfStride are required without a layout callback");
    }
    this.#layout = opts.layout;
    const layoutOf = (k: number, ari: boolean): { firstVfOffset: number; vfStride: number } =>
      this.#layout !== undefined ? this.#layout(k, ari) : { firstVfOffset: opts.firstVfOffset ?? 0, vfStride: opts.vfStride ?? 0 };
    // Linux's sriov_init/compute_max_vf_buses read offset and stride for every NumVFs from
    // TotalVFs down to 1 and fail with -EIO on offset 0, or stride 0 with more than one VF; QEMU
    // refuses a layout whose last VF passes devfn 255 ("VF addr overflows").
    for (const ari of [false, true]) {
      for (let k = 1; k <= total; k++) {
        const { firstVfOffset: off, vfStride: stride } = layoutOf(k, ari);
        if (!Number.isInteger(off) || off < 1 || off > 0xffff) bad(`First VF Offset ${off} (NumVFs ${k}) is not 1..65535`, { numVfs: k, ari });
        if (!Number.isInteger(stride) || stride < 0 || stride > 0xffff || (k > 1 && stride === 0)) {
          bad(`VF Stride ${stride} (NumVFs ${k}) is not valid`, { numVfs: k, ari });
        }
        if (off + (k - 1) * stride > 0xff) bad(`VF ${k} lands beyond devfn 255 (offset ${off}, stride ${stride})`, { numVfs: k, ari });
      }
    }
    for (const b of opts.vfBars ?? []) {
      if (!Number.isInteger(b.index) || b.index < 0 || b.index > 5) bad(`VF BAR index ${b.index} is not 0..5`);
      checkBarSpec(`VF BAR ${b.index}`, b, false);
      if (b.kind === "mem64" && b.index === 5) bad("a 64-bit VF BAR cannot start at slot 5");
      const taken = (i: number): boolean => this.#vfBars[i] !== undefined || (i > 0 && this.#vfBars[i - 1]?.kind === "mem64");
      if (taken(b.index) || (b.kind === "mem64" && taken(b.index + 1))) bad(`VF BAR ${b.index} defined twice`);
      this.#vfBars[b.index] = { kind: b.kind, size: b.size, prefetchable: b.prefetchable === true };
    }

    this.pf = pf;
    this.totalVfs = total;
    this.vfDeviceId = opts.vfDeviceId;
    this.supportedPageSizes = sup;
    const o = (this.offset = pf.addExtendedCapability(PCI_EXT_CAP_ID_SRIOV, 1, PCI_EXT_CAP_SRIOV_SIZEOF, opts.at));
    const c = pf.config;
    const initial = layoutOf(0, false);
    c.setU32(o + PCI_SRIOV_CAP, 0); // no VF Migration, no VF 10-bit tags
    c.setW1c(o + PCI_SRIOV_STATUS, 2, PCI_SRIOV_STATUS_VFM);
    c.setU16(o + PCI_SRIOV_INITIAL_VF, total);
    c.setU16(o + PCI_SRIOV_TOTAL_VF, total);
    c.setU8(o + PCI_SRIOV_FUNC_LINK, fdl);
    c.setU16(o + PCI_SRIOV_VF_OFFSET, initial.firstVfOffset & 0xffff);
    c.setU16(o + PCI_SRIOV_VF_STRIDE, initial.vfStride & 0xffff);
    c.setU16(o + PCI_SRIOV_VF_DID, opts.vfDeviceId);
    c.setU32(o + PCI_SRIOV_SUP_PGSIZE, sup);
    c.setU32(o + PCI_SRIOV_SYS_PGSIZE, 1);
    this.#initMasks();
    pf.onConfigWrite(o, PCI_EXT_CAP_SRIOV_SIZEOF, () => this.#afterWrite());
    pf.onReset(() => this.#afterReset());
    pf.attach(this);
  }

  /** Power-on write masks (QEMU pcie_sriov_pf_init_common): Control VFE|MSE|ARI, NumVFs, page size, VF BARs. */
  #initMasks(): void {
    const c = this.pf.config, o = this.offset;
    c.setWmask(o + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE | PCI_SRIOV_CTRL_ARI);
    c.setWmask(o + PCI_SRIOV_NUM_VF, 2, 0xffff);
    c.setWmask(o + PCI_SRIOV_SYS_PGSIZE, 4, this.supportedPageSizes);
    for (let i = 0; i < 6; i++) {
      const spec = this.vfBarSpec(i);
      if (spec === undefined) continue;
      const enc = barEncoding(spec);
      c.setU32(o + PCI_SRIOV_BAR + i * 4, enc.low);
      c.setWmask(o + PCI_SRIOV_BAR + i * 4, 4, enc.lowMask);
      if (spec.kind === "mem64") c.setWmask(o + PCI_SRIOV_BAR + i * 4 + 4, 4, enc.highMask);
    }
  }

  /** Run-time masks: what VF Enable locks (§3.3.3.1, §3.3.7, §3.3.13) and the VF BAR masks for the page size. */
  #syncMasks(): void {
    const c = this.pf.config, o = this.offset;
    const on = this.#enabled;
    const numVfs = c.read(o + PCI_SRIOV_NUM_VF, 2);
    // VF Enable is writable only while NumVFs <= TotalVFs (QEMU); while enabled it can be cleared.
    const vfe = on || numVfs <= this.totalVfs ? PCI_SRIOV_CTRL_VFE : 0;
    // ARI Capable Hierarchy moves every VF's routing ID: locked while VFs exist (changing it with
    // VF Enable set is undefined by §3.3.3.5; we keep the VFs where they are).
    c.pokeWmask(o + PCI_SRIOV_CTRL, 2, vfe | PCI_SRIOV_CTRL_MSE | (on ? 0 : PCI_SRIOV_CTRL_ARI));
    c.pokeWmask(o + PCI_SRIOV_NUM_VF, 2, on ? 0 : 0xffff);
    c.pokeWmask(o + PCI_SRIOV_SYS_PGSIZE, 4, on ? 0 : this.supportedPageSizes);
    for (let i = 0; i < 6; i++) {
      const spec = this.vfBarSpec(i);
      if (spec === undefined) continue;
      const enc = barEncoding(spec);
      c.pokeWmask(o + PCI_SRIOV_BAR + i * 4, 4, enc.lowMask);
      if (spec.kind === "mem64") c.pokeWmask(o + PCI_SRIOV_BAR + i * 4 + 4, 4, enc.highMask);
    }
  }

  #afterWrite(): readonly PciEffect[] | undefined {
    const c = this.pf.config, o = this.offset;
    decodeEpoch.value++;
    // System Page Size: software sets exactly one supported bit (§3.3.13); anything else is
    // discarded so that VF BAR alignment stays defined.
    const ps = c.read(o + PCI_SRIOV_SYS_PGSIZE, 4);
    if (ps !== this.#pageSize) {
      if (popcount32(ps) !== 1) c.poke(o + PCI_SRIOV_SYS_PGSIZE, 4, this.#pageSize);
      else this.#pageSize = ps;
    }
    let ctrl = c.read(o + PCI_SRIOV_CTRL, 2);
    const numVfs = c.read(o + PCI_SRIOV_NUM_VF, 2);
    const ari = (ctrl & PCI_SRIOV_CTRL_ARI) !== 0;
    if (numVfs !== this.#lastNumVfs || ari !== this.#lastAri) {
      this.#lastNumVfs = numVfs;
      this.#lastAri = ari;
      // First VF Offset and VF Stride may change with NumVFs and ARI (§3.3.9, §3.3.10).
      if (this.#layout !== undefined) {
        const l = this.#layout(numVfs, ari);
        c.poke(o + PCI_SRIOV_VF_OFFSET, 2, l.firstVfOffset & 0xffff);
        c.poke(o + PCI_SRIOV_VF_STRIDE, 2, l.vfStride & 0xffff);
      }
    }
    let effects: PciEffect[] | undefined;
    const vfe = (ctrl & PCI_SRIOV_CTRL_VFE) !== 0;
    if (vfe && !this.#enabled) {
      if (numVfs > this.totalVfs) {
        // Unreachable through the write mask; kept so that the rule holds by construction.
        ctrl &= ~PCI_SRIOV_CTRL_VFE;
        c.poke(o + PCI_SRIOV_CTRL, 2, ctrl);
      } else {
        this.#enabled = true;
        this.#enabledCount = numVfs;
        effects = [{ kind: "vfs-enabled", numVfs }];
      }
    } else if (!vfe && this.#enabled) {
      effects = this.#disable();
    }
    this.#syncMasks();
    return effects;
  }

  #disable(): PciEffect[] {
    const n = this.#enabledCount;
    this.#enabled = false;
    this.#enabledCount = 0;
    // A VF that goes away is reset (QEMU pci_set_enabled(false)): it comes back clean.
    for (const vf of this.#vfs.values()) vf.reset();
    return [{ kind: "vfs-disabled", numVfs: n }];
  }

  #afterReset(): readonly PciEffect[] | undefined {
    // The PF's registers are already back at power-on values (CTRL 0, NumVFs 0, page size 4K,
    // VF BARs type bits only): bring the cached state in line (§3.3, QEMU pcie_sriov_pf_reset).
    const effects = this.#enabled ? this.#disable() : undefined;
    this.#lastNumVfs = 0;
    this.#lastAri = false;
    this.#pageSize = 1;
    return effects;
  }

  // ------------------------------------------------------------------ state

  get #ctrl(): number {
    return this.pf.config.read(this.offset + PCI_SRIOV_CTRL, 2);
  }
  /** NumVFs as the register holds it (any 16-bit value while VF Enable is clear). */
  get numVfs(): number {
    return this.pf.config.read(this.offset + PCI_SRIOV_NUM_VF, 2);
  }
  get vfEnabled(): boolean {
    return this.#enabled;
  }
  /** How many VFs exist: NumVFs while VF Enable is set, else 0 (QEMU pcie_sriov_num_vfs). */
  get enabledVfs(): number {
    return this.#enabledCount;
  }
  get initialVfs(): number {
    return this.pf.config.read(this.offset + PCI_SRIOV_INITIAL_VF, 2);
  }
  get vfMse(): boolean {
    return (this.#ctrl & PCI_SRIOV_CTRL_MSE) !== 0;
  }
  get ariCapableHierarchy(): boolean {
    return (this.#ctrl & PCI_SRIOV_CTRL_ARI) !== 0;
  }
  get firstVfOffset(): number {
    return this.pf.config.read(this.offset + PCI_SRIOV_VF_OFFSET, 2);
  }
  get vfStride(): number {
    return this.pf.config.read(this.offset + PCI_SRIOV_VF_STRIDE, 2);
  }
  get functionDependencyLink(): number {
    return this.pf.config.read(this.offset + PCI_SRIOV_FUNC_LINK, 1);
  }
  /** System Page Size in bytes (bit n means 2^(n+12)). */
  get systemPageSize(): number {
    return 2 ** (Math.log2(this.#pageSize) + 12);
  }

  /** The layout a given NumVFs / ARI setting would have (the callback, or the fixed values). */
  layoutFor(numVfs: number, ari: boolean): { firstVfOffset: number; vfStride: number } {
    if (this.#layout !== undefined) return this.#layout(numVfs, ari);
    return { firstVfOffset: this.firstVfOffset, vfStride: this.vfStride };
  }

  /** Routing ID of VF n (1-based): PF RID + First VF Offset + (n − 1) × VF Stride, 16-bit (SR-IOV §2.1.2). */
  vfRoutingId(pfRid: number, n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 0xffff) throw new PciError("PCI_BAD_ARGUMENT", `VF number ${n} is not 1..65535`);
    return (pfRid + this.firstVfOffset + (n - 1) * this.vfStride) & 0xffff;
  }

  // ------------------------------------------------------------------ VF BARs

  /**
   * VF BAR i as one VF sees it. Its size is the declared size rounded up to the System Page Size:
   * each VF's BAR must be page aligned (§3.3.13), which Linux checks in sriov_init.
   */
  vfBarSpec(bar: number): BarSpec | undefined {
    const spec = this.#vfBars[bar];
    if (spec === undefined) return undefined;
    return { kind: spec.kind, size: Math.max(spec.size, this.systemPageSize), prefetchable: spec.prefetchable === true };
  }
  vfBarSize(bar: number): number | undefined {
    return this.vfBarSpec(bar)?.size;
  }
  /** VF BAR i's base as programmed (VF 1's BAR), or undefined when unassigned. */
  vfBarBase(bar: number): number | undefined {
    const spec = this.vfBarSpec(bar);
    if (spec === undefined) return undefined;
    const reg = this.offset + PCI_SRIOV_BAR + bar * 4;
    const low = this.pf.config.read(reg, 4);
    const high = spec.kind === "mem64" ? this.pf.config.read(reg + 4, 4) : 0;
    return decodeBarAddress(spec.kind, low, high, spec.size * Math.max(1, this.totalVfs));
  }
  /** Address of BAR i of the VF with 0-based index: VF BAR i + index × size (SR-IOV §3.3.14). */
  vfBarAddress(bar: number, index: number): number | undefined {
    const base = this.vfBarBase(bar);
    const size = this.vfBarSize(bar);
    if (base === undefined || size === undefined) return undefined;
    return base + index * size;
  }
  /** VF Enable set and index (0-based) below the enabled NumVFs. VF MSE is not consulted (QEMU). */
  vfPresent(index: number): boolean {
    return this.#enabled && index >= 0 && index < this.#enabledCount;
  }

  // ------------------------------------------------------------------ VF functions

  /**
   * The PciFunction of VF n (1-based), created on first use and reused afterwards (as QEMU 10
   * reuses VF instances). It reads all ones on the bus unless VF n is enabled; its Vendor and
   * Device ID registers read 0xFFFF; its BARs are this capability's VF BARs.
   */
  vfFunction(n: number, opts: VfFunctionOptions): PciFunction {
    if (!Number.isInteger(n) || n < 1 || n > this.totalVfs) throw new PciError("PCI_BAD_ARGUMENT", `VF ${n} is not 1..${this.totalVfs}`);
    let vf = this.#vfs.get(n - 1);
    if (vf === undefined) {
      vf = new PciFunction({
        vendorId: this.pf.vendorId,
        deviceId: this.vfDeviceId,
        classCode: opts.classCode,
        revision: opts.revision ?? 0,
        subsystemVendorId: opts.subsystemVendorId ?? 0,
        subsystemId: opts.subsystemId ?? 0,
        express: true,
        virtualFunction: { parent: this, index: n - 1 },
      });
      this.#vfs.set(n - 1, vf);
    }
    return vf;
  }
  /** VF n's function if it was created. */
  existingVf(n: number): PciFunction | undefined {
    return this.#vfs.get(n - 1);
  }
}

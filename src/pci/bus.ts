import { allOnes } from "./config-space.js";
import { PciError } from "./errors.js";
import { decodeEpoch, type PciEffect, type PciFunction } from "./function.js";
import type { AccessWidth, PciPlatform } from "./platform.js";
import { SriovCapability } from "./sriov.js";
import { PCI_EXT_CAP_ID_ARI } from "./regs.js";

/** A function's place: bus, device (0..31) and function (0..7, or 0..255 with ARI on device 0). */
export interface PciAddress {
  readonly bus: number;
  readonly device: number;
  readonly function: number;
}
/** Where to attach: a bus/device/function triple, or bus and devfn. */
export type PciLocation = PciAddress | { readonly bus: number; readonly devfn: number };

/** Routing ID arithmetic (PCIe Base §2.2.6.2): 16 bits, bus = rid >> 8, devfn = rid & 0xff. */
export function routingId(bus: number, devfn: number): number {
  return ((bus & 0xff) << 8) | (devfn & 0xff);
}
export function ridBus(rid: number): number {
  return (rid >> 8) & 0xff;
}
export function ridDevfn(rid: number): number {
  return rid & 0xff;
}
export function devfnDevice(devfn: number): number {
  return (devfn >> 3) & 0x1f;
}
export function devfnFunction(devfn: number): number {
  return devfn & 7;
}
/** "BB:DD.F" as lspci prints it. */
export function formatBdf(rid: number): string {
  const h = (v: number, w: number): string => v.toString(16).padStart(w, "0");
  return `${h(ridBus(rid), 2)}:${h(devfnDevice(ridDevfn(rid)), 2)}.${devfnFunction(ridDevfn(rid))}`;
}

export type EffectHandler = (fn: PciFunction, rid: number, effects: readonly PciEffect[]) => void;

interface Decode {
  readonly base: number;
  readonly end: number;
  readonly fn: PciFunction;
  readonly bar: number;
}

function inRange8(v: number): boolean {
  return Number.isInteger(v) && v >= 0 && v <= 0xff;
}

/**
 * Functions addressed by routing ID, and the configuration and MMIO halves of PciPlatform: an
 * absent function, or a VF that is not enabled, reads all ones and drops writes (PCIe Base
 * §2.3.2: Unsupported Request; QEMU pci_host.c); memory accesses go to whichever enabled memory
 * BAR holds the address. Buses are flat: every bus number is reachable (ECAM routes by bus
 * number); bridge windows are not consulted.
 */
export class PciBus implements PciPlatform {
  readonly mmioWindow: { readonly base: number; readonly size: number };
  readonly #slots: (PciFunction | undefined)[] = new Array<PciFunction | undefined>(0x10000);
  readonly #rids = new Map<PciFunction, number>();
  #msi: ((address: number, data: number) => void) | undefined;
  #effects: EffectHandler | undefined;
  #epoch = -1;
  #mem: Decode[] = [];
  #memMaxEnd: number[] = [];
  #io: Decode[] = [];

  constructor(opts: { mmioWindow?: { base: number; size: number } } = {}) {
    this.mmioWindow = opts.mmioWindow ?? { base: 0xe000_0000, size: 0x1000_0000 };
  }

  // ---------------------------------------------------------------- topology

  /**
   * Puts a function at a location and returns its routing ID. Function numbers above 7 need an
   * ARI capability (PCIe Base §6.13) and device 0. A VF must go exactly where its PF's SR-IOV
   * capability says; a PF with SR-IOV must keep all its possible VFs on its own bus.
   */
  attach(fn: PciFunction, at: PciLocation): number {
    let devfn: number;
    if ("devfn" in at) {
      if (!inRange8(at.devfn)) throw new PciError("PCI_BAD_ARGUMENT", `devfn ${at.devfn} is not 0..255`);
      devfn = at.devfn;
    } else {
      if (!Number.isInteger(at.device) || at.device < 0 || at.device > 31) throw new PciError("PCI_BAD_ARGUMENT", `device ${at.device} is not 0..31`);
      if (!inRange8(at.function)) throw new PciError("PCI_BAD_ARGUMENT", `function ${at.function} is not 0..255`);
      if (at.function > 7) {
        if (fn.findExtendedCapability(PCI_EXT_CAP_ID_ARI) === undefined) {
          throw new PciError("PCI_NEEDS_ARI", `function ${at.function} > 7 needs an ARI capability`, { function: at.function });
        }
        if (at.device !== 0) throw new PciError("PCI_BAD_ARGUMENT", "an ARI function number above 7 is on device 0");
        devfn = at.function;
      } else {
        devfn = (at.device << 3) | at.function;
      }
    }
    if (!inRange8(at.bus)) throw new PciError("PCI_BAD_ARGUMENT", `bus ${at.bus} is not 0..255`);
    const rid = routingId(at.bus, devfn);
    if (this.#rids.has(fn)) throw new PciError("PCI_ADDRESS_IN_USE", `function already attached at ${formatBdf(this.#rids.get(fn) ?? 0)}`);
    if (this.#slots[rid] !== undefined) throw new PciError("PCI_ADDRESS_IN_USE", `${formatBdf(rid)} is taken`, { rid });
    const vf = fn.virtualFunction;
    if (vf !== undefined) {
      const pfRid = this.#rids.get(vf.parent.pf);
      if (pfRid === undefined) throw new PciError("PCI_NOT_ATTACHED", "attach the PF before its VFs");
      const want = this.vfRoutingId(vf.parent.pf, vf.index + 1);
      if (want !== rid) throw new PciError("PCI_BAD_ARGUMENT", `VF ${vf.index + 1} belongs at ${formatBdf(want)}, not ${formatBdf(rid)}`, { rid, want });
    }
    const sriov = fn.feature(SriovCapability);
    if (sriov !== undefined) this.#checkVfLayout(fn, sriov, rid);
    this.#slots[rid] = fn;
    this.#rids.set(fn, rid);
    fn.setMsiSink((address, data) => this.#msi?.(address, data));
    this.#epoch = -1;
    return rid;
  }

  /**
   * Every NumVFs 1..TotalVFs, with and without ARI Capable Hierarchy, must keep the last VF on the
   * PF's bus (QEMU: "VF addr overflows"), and without ARI on the PF inside the PF's device.
   */
  #checkVfLayout(pf: PciFunction, sriov: SriovCapability, pfRid: number): void {
    const hasAri = pf.findExtendedCapability(PCI_EXT_CAP_ID_ARI) !== undefined;
    for (const ari of [false, true]) {
      for (let k = 1; k <= sriov.totalVfs; k++) {
        const { firstVfOffset, vfStride } = sriov.layoutFor(k, ari);
        const last = pfRid + firstVfOffset + (k - 1) * vfStride;
        if (ridBus(last) !== ridBus(pfRid) || last > 0xffff) {
          throw new PciError("PCI_VF_OFF_BUS", `VF ${k} of ${formatBdf(pfRid)} would leave bus ${ridBus(pfRid)}`, { numVfs: k, ari });
        }
        if (!hasAri && devfnDevice(ridDevfn(last)) !== devfnDevice(ridDevfn(pfRid))) {
          throw new PciError("PCI_NEEDS_ARI", `VF ${k} of ${formatBdf(pfRid)} is beyond function 7 of its device; the PF needs ARI`, { numVfs: k, ari });
        }
      }
    }
  }

  /** Attaches a VF where its PF's SR-IOV capability puts it; returns its routing ID. */
  attachVf(vf: PciFunction): number {
    const link = vf.virtualFunction;
    if (link === undefined) throw new PciError("PCI_BAD_ARGUMENT", "not a VF");
    const rid = this.vfRoutingId(link.parent.pf, link.index + 1);
    return this.attach(vf, { bus: ridBus(rid), devfn: ridDevfn(rid) });
  }

  detach(fn: PciFunction): void {
    const rid = this.#rids.get(fn);
    if (rid === undefined) throw new PciError("PCI_NOT_ATTACHED", "function is not attached to this bus");
    this.#rids.delete(fn);
    this.#slots[rid] = undefined;
    fn.setMsiSink(undefined);
    this.#epoch = -1;
  }

  /** Creates (or reuses) and attaches VFs 1..enabledVfs of `pf`; `opts` describes a VF. */
  attachEnabledVfs(pf: PciFunction, opts: { classCode: number; revision?: number; subsystemVendorId?: number; subsystemId?: number }): PciFunction[] {
    const sriov = this.#sriovOf(pf);
    const out: PciFunction[] = [];
    for (let n = 1; n <= sriov.enabledVfs; n++) {
      const vf = sriov.vfFunction(n, opts);
      if (!this.#rids.has(vf)) this.attachVf(vf);
      out.push(vf);
    }
    return out;
  }

  /** Detaches every attached VF of `pf`; returns how many. */
  detachVfs(pf: PciFunction): number {
    const sriov = this.#sriovOf(pf);
    let n = 0;
    for (let i = 1; i <= sriov.totalVfs; i++) {
      const vf = sriov.existingVf(i);
      if (vf !== undefined && this.#rids.has(vf)) {
        this.detach(vf);
        n++;
      }
    }
    return n;
  }

  #sriovOf(pf: PciFunction): SriovCapability {
    const s = pf.feature(SriovCapability);
    if (s === undefined) throw new PciError("PCI_BAD_ARGUMENT", "function has no SR-IOV capability");
    return s;
  }

  /** Routing ID of VF n (1-based) of an attached PF, from its current offset and stride. */
  vfRoutingId(pf: PciFunction, n: number): number {
    const pfRid = this.#rids.get(pf);
    if (pfRid === undefined) throw new PciError("PCI_NOT_ATTACHED", "PF is not attached to this bus");
    return this.#sriovOf(pf).vfRoutingId(pfRid, n);
  }

  functionAt(bus: number, devfn: number): PciFunction | undefined {
    if (!inRange8(bus) || !inRange8(devfn)) return undefined;
    return this.#slots[routingId(bus, devfn)];
  }
  ridOf(fn: PciFunction): number | undefined {
    return this.#rids.get(fn);
  }
  /** Every attached function with its routing ID, in routing-ID order. */
  functions(): { rid: number; fn: PciFunction }[] {
    return [...this.#rids].map(([fn, rid]) => ({ rid, fn })).sort((a, b) => a.rid - b.rid);
  }

  /** Receives the effects of every configuration write that goes through this bus. */
  onEffects(handler: EffectHandler | undefined): void {
    this.#effects = handler;
  }

  // ---------------------------------------------------------------- PciPlatform

  #present(bus: number, devfn: number): PciFunction | undefined {
    const fn = this.functionAt(bus, devfn);
    return fn !== undefined && fn.present ? fn : undefined;
  }

  configRead(bus: number, devfn: number, offset: number, width: AccessWidth): number {
    const fn = this.#present(bus, devfn);
    return fn === undefined ? allOnes(width) : fn.configRead(offset, width);
  }

  /** Returns the effects too (they also go to the onEffects handler). */
  configWrite(bus: number, devfn: number, offset: number, width: AccessWidth, value: number): PciEffect[] {
    const fn = this.#present(bus, devfn);
    if (fn === undefined) return [];
    const effects = fn.configWrite(offset, width, value);
    if (effects.length > 0) this.#effects?.(fn, routingId(bus, devfn), effects);
    return effects;
  }

  mmioRead(address: number, width: AccessWidth): number {
    const d = this.#lookup(this.#memDecode(), address, width);
    return d === undefined ? allOnes(width) : d.fn.barRead(d.bar, address - d.base, width);
  }

  mmioWrite(address: number, width: AccessWidth, value: number): void {
    const d = this.#lookup(this.#memDecode(), address, width);
    if (d !== undefined) d.fn.barWrite(d.bar, address - d.base, width, value);
  }

  /** Port I/O (x86 IN/OUT) to I/O BARs; unclaimed ports read all ones. */
  ioRead(port: number, width: AccessWidth): number {
    this.#memDecode();
    const d = this.#io.find((e) => port >= e.base && port + width <= e.end);
    return d === undefined ? allOnes(width) : d.fn.barRead(d.bar, port - d.base, width);
  }
  ioWrite(port: number, width: AccessWidth, value: number): void {
    this.#memDecode();
    const d = this.#io.find((e) => port >= e.base && port + width <= e.end);
    if (d !== undefined) d.fn.barWrite(d.bar, port - d.base, width, value);
  }

  onMsi(handler: (address: number, data: number) => void): void {
    this.#msi = handler;
  }

  /** Which function and BAR decode `address`, if any (for the vmm and tests). */
  resolveMmio(address: number): { fn: PciFunction; bar: number; offset: number } | undefined {
    const d = this.#lookup(this.#memDecode(), address, 1);
    return d === undefined ? undefined : { fn: d.fn, bar: d.bar, offset: address - d.base };
  }

  #memDecode(): Decode[] {
    if (this.#epoch === decodeEpoch.value) return this.#mem;
    const mem: Decode[] = [];
    const io: Decode[] = [];
    for (const [fn, _rid] of this.#rids) {
      if (!fn.present) continue;
      for (let bar = 0; bar < 6; bar++) {
        const spec = fn.barSpec(bar);
        if (spec === undefined) continue;
        const base = fn.barAddress(bar);
        if (base === undefined) continue;
        (spec.kind === "io" ? io : mem).push({ base, end: base + spec.size, fn, bar });
      }
    }
    mem.sort((a, b) => a.base - b.base);
    const maxEnd: number[] = [];
    let m = 0;
    for (const d of mem) {
      m = Math.max(m, d.end);
      maxEnd.push(m);
    }
    this.#mem = mem;
    this.#memMaxEnd = maxEnd;
    this.#io = io;
    this.#epoch = decodeEpoch.value;
    return mem;
  }

  /**
   * The BAR holding [address, address + width). Overlapping BARs are the guest's mistake: the one
   * with the highest base that holds the access wins.
   */
  #lookup(list: Decode[], address: number, width: number): Decode | undefined {
    if (!Number.isSafeInteger(address) || address < 0) return undefined;
    let lo = 0, hi = list.length - 1, idx = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if ((list[mid]?.base ?? Infinity) <= address) {
        idx = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    for (let i = idx; i >= 0 && (this.#memMaxEnd[i] ?? 0) > address; i--) {
      const d = list[i];
      if (d !== undefined && address + width <= d.end && address >= d.base) return d;
    }
    return undefined;
  }
}

/**
 * The guest's PCI core, part 2: devices on the bus, driver binding, and SR-IOV as Linux's
 * drivers/pci/iov.c does it (reference/pci-sriov.md §8): sriov_init at enumeration (VF Enable
 * cleared, ARI Capable Hierarchy, page size choice, VF BAR sizing, NumVFs probed from TotalVFs
 * down to 1 for offset and stride), sriov_enable/disable, VFs at the computed routing IDs, and the
 * `sriov_numvfs` store rules with their errno codes.
 */
import type { PciPlatform } from "../pci/platform.js";
import { SysError, sysErr } from "./errors.js";
import {
  MmioAllocator,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_EXT_CAP_ID_SRIOV,
  PciDev,
  enumerate,
  sizeBar,
  writeBarAddress,
} from "./pci.js";

/** The guest's PAGE_SIZE (x86). */
export const PAGE_SIZE = 4096;

// SR-IOV capability registers (PCIe r5 §9.3.3; pci-sriov.md §3).
export const SRIOV_CAP = 0x04;
export const SRIOV_CTRL = 0x08;
export const SRIOV_INITIAL_VF = 0x0c;
export const SRIOV_TOTAL_VF = 0x0e;
export const SRIOV_NUM_VF = 0x10;
export const SRIOV_FUNC_LINK = 0x12;
export const SRIOV_VF_OFFSET = 0x14;
export const SRIOV_VF_STRIDE = 0x16;
export const SRIOV_VF_DID = 0x1a;
export const SRIOV_SUP_PGSIZE = 0x1c;
export const SRIOV_SYS_PGSIZE = 0x20;
export const SRIOV_BAR = 0x24;
export const SRIOV_CTRL_VFE = 0x01;
export const SRIOV_CTRL_MSE = 0x08;
export const SRIOV_CTRL_ARI = 0x10;
export const SRIOV_CAP_VFM = 0x01;

/** Per-PF SR-IOV state (Linux's struct pci_sriov). */
export interface SriovState {
  readonly pos: number;
  readonly cap: number;
  ctrl: number;
  readonly totalVFs: number;
  readonly initialVFs: number;
  /** sriov_totalvfs as sysfs shows it (driver_max_VFs, defaults to TotalVFs). */
  driverMaxVFs: number;
  numVFs: number;
  offset: number;
  stride: number;
  readonly vfDevice: number;
  readonly link: number;
  readonly pgsz: number;
  maxVfBuses: number;
  driversAutoprobe: boolean;
  /** Per VF BAR: size of one VF's BAR and the base of the whole TotalVFs-sized range (0 = unassigned). */
  readonly bars: ({ size: number; is64: boolean; prefetchable: boolean; base: number } | undefined)[];
  readonly vfs: PciDev[];
}

export interface PciDriver {
  readonly name: string;
  match(dev: PciDev): boolean;
  /** Binds; throws SysError to refuse (the device stays unbound, as a failed probe leaves it). */
  probe(dev: PciDev): void;
  remove(dev: PciDev): void;
  /** Returns the number of VFs enabled, or throws SysError. */
  sriovConfigure?(dev: PciDev, numVfs: number): number;
}

export type UeventAction = "add" | "remove" | "change" | "bind" | "unbind" | "move";
export interface Uevent {
  readonly action: UeventAction;
  /** Path under /sys, e.g. "/devices/pci0000:00/0000:00:01.0/0000:01:00.0". */
  readonly devpath: string;
  readonly subsystem: string;
  readonly env: Readonly<Record<string, string>>;
}

export class PciCore {
  readonly devices: PciDev[] = [];
  readonly drivers: PciDriver[] = [];
  readonly bound = new Map<PciDev, PciDriver>();
  readonly sriov = new Map<PciDev, SriovState>();
  /** Why sriov_init gave up on a PF (Linux logs it and the device has no SR-IOV files). */
  readonly sriovInitErrors = new Map<PciDev, SysError>();
  readonly #uevent: (e: Uevent) => void;
  readonly #mmio: MmioAllocator;

  constructor(
    readonly platform: PciPlatform,
    uevent: (e: Uevent) => void,
  ) {
    this.#uevent = uevent;
    this.#mmio = new MmioAllocator(platform.mmioWindow);
  }

  registerDriver(drv: PciDriver): void {
    this.drivers.push(drv);
  }

  /** Enumerates everything below bus 0 and probes drivers, in bus order. */
  scan(): void {
    const res = enumerate(this.platform, this.#mmio, (dev) => {
      this.#sriovInit(dev);
    });
    for (const dev of res.devices) this.#computeDevpath(dev);
    for (const dev of res.devices) this.#addDevice(dev, true);
  }

  #computeDevpath(dev: PciDev): void {
    dev.devpath = dev.parent === undefined ? `devices/pci0000:00/${dev.name}` : `${dev.parent.devpath}/${dev.name}`;
  }

  #addDevice(dev: PciDev, probe: boolean): void {
    this.devices.push(dev);
    this.#uevent({ action: "add", devpath: `/${dev.devpath}`, subsystem: "pci", env: this.#pciEnv(dev) });
    if (probe && !dev.isBridge) this.probeDevice(dev);
  }

  #pciEnv(dev: PciDev): Record<string, string> {
    const h = (n: number): string => n.toString(16).toUpperCase();
    return { PCI_CLASS: h(dev.classCode), PCI_ID: `${h(dev.vendor).padStart(4, "0")}:${h(dev.device).padStart(4, "0")}`, PCI_SLOT_NAME: dev.name };
  }

  /** device_attach: the first matching driver that probes successfully binds. */
  probeDevice(dev: PciDev): void {
    if (this.bound.has(dev)) return;
    for (const drv of this.drivers) {
      if (!drv.match(dev)) continue;
      try {
        drv.probe(dev);
      } catch (e) {
        // A failed probe leaves the device unbound (really_probe logs and moves on).
        if (e instanceof SysError) continue;
        throw e;
      }
      this.bound.set(dev, drv);
      this.#uevent({ action: "bind", devpath: `/${dev.devpath}`, subsystem: "pci", env: { DRIVER: drv.name } });
      return;
    }
  }

  /** Unbinds the driver (the sysfs `unbind` store); a PF driver's remove disables SR-IOV itself. */
  unbind(dev: PciDev): void {
    const drv = this.bound.get(dev);
    if (drv === undefined) return;
    drv.remove(dev);
    this.bound.delete(dev);
    this.#uevent({ action: "unbind", devpath: `/${dev.devpath}`, subsystem: "pci", env: { DRIVER: drv.name } });
  }

  /** Removes every device (machine shutdown or reset): drivers first, VFs before their PF. */
  removeAll(): void {
    for (const dev of [...this.devices].reverse()) this.unbind(dev);
    for (const dev of [...this.devices].reverse()) {
      this.#uevent({ action: "remove", devpath: `/${dev.devpath}`, subsystem: "pci", env: {} });
    }
    this.devices.length = 0;
    this.sriov.clear();
  }

  find(name: string): PciDev | undefined {
    return this.devices.find((d) => d.name === name);
  }

  // ---------------------------------------------------------------------------------------------
  // SR-IOV (drivers/pci/iov.c)

  #sriovInit(dev: PciDev): void {
    const pos = dev.extCaps.get(PCI_EXT_CAP_ID_SRIOV);
    // pci_iov_init: SR-IOV only on PCIe functions (the ext cap list exists only for those).
    if (pos === undefined || dev.pcieType < 0) return;
    try {
      const st = this.#sriovInitAt(dev, pos);
      if (st !== undefined) this.sriov.set(dev, st);
    } catch (e) {
      if (e instanceof SysError) this.sriovInitErrors.set(dev, e);
      else throw e;
    }
  }

  #sriovInitAt(dev: PciDev, pos: number): SriovState | undefined {
    // 1. VFs left enabled (by firmware or a previous kernel) are switched off first. Linux then
    // sleeps 1 s; the model's time does not pass inside a config cycle.
    let ctrl = dev.read16(pos + SRIOV_CTRL);
    if ((ctrl & SRIOV_CTRL_VFE) !== 0) {
      dev.write16(pos + SRIOV_CTRL, 0);
    }
    // 2. ARI Capable Hierarchy when the upstream bridge forwards ARI.
    ctrl = 0;
    if (dev.parent?.ariForwarding === true) ctrl |= SRIOV_CTRL_ARI;
    dev.write16(pos + SRIOV_CTRL, ctrl);
    // 3. TotalVFs 0: not an SR-IOV device after all.
    const total = dev.read16(pos + SRIOV_TOTAL_VF);
    if (total === 0) return undefined;
    // 4. Smallest supported page size >= PAGE_SIZE.
    let pgsz = dev.read32(pos + SRIOV_SUP_PGSIZE);
    pgsz &= ~((1 << (Math.log2(PAGE_SIZE) - 12)) - 1);
    if (pgsz === 0) throw sysErr("EIO", `${dev.name}: no supported SR-IOV page size >= ${PAGE_SIZE}`);
    pgsz &= -pgsz;
    dev.write32(pos + SRIOV_SYS_PGSIZE, pgsz >>> 0);
    // 5. VF BARs, sized like ordinary BARs; each size a multiple of PAGE_SIZE.
    const bars: SriovState["bars"] = [];
    for (let i = 0; i < 6; i++) {
      const reg = pos + SRIOV_BAR + i * 4;
      const s = sizeBar(dev, reg);
      if (s === undefined || s.io) {
        bars.push(undefined);
        continue;
      }
      if (s.size % PAGE_SIZE !== 0) throw sysErr("EIO", `${dev.name}: VF BAR${i} size ${s.size} is not a multiple of PAGE_SIZE`);
      const span = s.size * total;
      const base = this.#mmio.alloc(span, Math.max(s.size, PAGE_SIZE)) ?? 0;
      if (base !== 0) writeBarAddress(dev, reg, s.is64, base);
      bars.push({ size: s.size, is64: s.is64, prefetchable: s.prefetchable, base });
      if (s.is64) {
        bars.push(undefined);
        i++;
      }
    }
    const st: SriovState = {
      pos,
      cap: dev.read32(pos + SRIOV_CAP),
      ctrl,
      totalVFs: total,
      initialVFs: dev.read16(pos + SRIOV_INITIAL_VF),
      driverMaxVFs: total,
      numVFs: 0,
      offset: dev.read16(pos + SRIOV_VF_OFFSET),
      stride: dev.read16(pos + SRIOV_VF_STRIDE),
      vfDevice: dev.read16(pos + SRIOV_VF_DID),
      link: dev.read8(pos + SRIOV_FUNC_LINK),
      pgsz,
      maxVfBuses: dev.bus,
      driversAutoprobe: true,
      bars,
      vfs: [],
    };
    // 7. compute_max_vf_buses: NumVFs from TotalVFs down to 1, offset and stride re-read each time.
    try {
      for (let nr = total; nr >= 1; nr--) {
        this.#setNumVfs(dev, st, nr);
        if (st.offset === 0 || (nr > 1 && st.stride === 0)) {
          throw sysErr("EIO", `${dev.name}: invalid SR-IOV offset ${st.offset} / stride ${st.stride} for NumVFs ${nr}`);
        }
        const bus = virtfnBus(dev, st, nr - 1);
        if (bus > st.maxVfBuses) st.maxVfBuses = bus;
      }
    } finally {
      this.#setNumVfs(dev, st, 0);
    }
    return st;
  }

  /** pci_iov_set_numvfs: write NumVFs, then re-read offset and stride (they may depend on it). */
  #setNumVfs(dev: PciDev, st: SriovState, nr: number): void {
    dev.write16(st.pos + SRIOV_NUM_VF, nr);
    st.offset = dev.read16(st.pos + SRIOV_VF_OFFSET);
    st.stride = dev.read16(st.pos + SRIOV_VF_STRIDE);
  }

  /** `sriov_numvfs` store (iov.c: sriov_numvfs_store). Input is the raw sysfs write. */
  sriovNumvfsStore(dev: PciDev, input: string): void {
    const st = this.sriov.get(dev);
    if (st === undefined) throw sysErr("ENOENT");
    const n = kstrtou16(input);
    if (n > st.driverMaxVFs) throw sysErr("ERANGE", `${n} exceeds sriov_totalvfs ${st.driverMaxVFs}`);
    if (n === st.numVFs) return;
    const drv = this.bound.get(dev);
    if (drv === undefined) throw sysErr("ENOENT", `${dev.name}: no driver bound`);
    if (drv.sriovConfigure === undefined) throw sysErr("ENOENT", `${dev.name}: driver ${drv.name} does not support SR-IOV configuration via sysfs`);
    if (n === 0) {
      drv.sriovConfigure(dev, 0);
      return;
    }
    if (st.numVFs !== 0) {
      throw sysErr("EBUSY", `${dev.name}: ${st.numVFs} VFs already enabled. Disable before enabling ${n} VFs`);
    }
    drv.sriovConfigure(dev, n);
  }

  /** `sriov_drivers_autoprobe` store: kstrtobool. */
  sriovAutoprobeStore(dev: PciDev, input: string): void {
    const st = this.sriov.get(dev);
    if (st === undefined) throw sysErr("ENOENT");
    st.driversAutoprobe = kstrtobool(input);
  }

  /** pci_enable_sriov (iov.c: sriov_enable). Returns 0 or throws SysError; rolls back on failure. */
  enableSriov(dev: PciDev, nr: number): void {
    const st = this.sriov.get(dev);
    if (st === undefined) throw sysErr("ENODEV");
    if (st.numVFs !== 0) throw sysErr("EINVAL");
    const initial = dev.read16(st.pos + SRIOV_INITIAL_VF);
    const vfm = (st.cap & SRIOV_CAP_VFM) !== 0;
    if (initial > st.totalVFs || (!vfm && initial !== st.totalVFs)) throw sysErr("EIO", `${dev.name}: InitialVFs ${initial} != TotalVFs ${st.totalVFs}`);
    if (nr < 0 || nr > st.totalVFs || (!vfm && nr > initial)) throw sysErr("EINVAL");
    for (const b of st.bars) {
      if (b !== undefined && b.base === 0) throw sysErr("ENOMEM", `${dev.name}: not enough MMIO resources for SR-IOV`);
    }
    this.#setNumVfs(dev, st, nr);
    const lastBus = virtfnBus(dev, st, nr - 1);
    const busLimit = dev.parent === undefined ? 0 : dev.parent.subordinate;
    if (lastBus > busLimit) {
      this.#setNumVfs(dev, st, 0);
      throw sysErr("ENOMEM", `${dev.name}: VF bus ${lastBus} out of range`);
    }
    // Function Dependency Link: a different function must exist and be a PF (iov.c: sriov_enable).
    const linkDevfn = dev.parent === undefined ? (dev.devfn & ~7) | (st.link & 7) : st.link;
    if (linkDevfn !== dev.devfn) {
      const other = this.devices.find((d) => d.bus === dev.bus && d.devfn === linkDevfn);
      if (other === undefined) {
        this.#setNumVfs(dev, st, 0);
        throw sysErr("ENODEV", `${dev.name}: dependency link to missing function ${linkDevfn}`);
      }
      if (!this.sriov.has(other)) {
        this.#setNumVfs(dev, st, 0);
        throw sysErr("ENOSYS", `${dev.name}: dependency link to ${other.name}, which is not a PF`);
      }
    }
    st.ctrl |= SRIOV_CTRL_VFE | SRIOV_CTRL_MSE;
    dev.write16(st.pos + SRIOV_CTRL, st.ctrl);
    // Model check beyond Linux: a device that refused VF Enable shows VFE clear on read-back
    // (the hypervisor could not back the VFs); report it instead of probing absent functions.
    if ((dev.read16(st.pos + SRIOV_CTRL) & SRIOV_CTRL_VFE) === 0) {
      st.ctrl &= ~(SRIOV_CTRL_VFE | SRIOV_CTRL_MSE);
      dev.write16(st.pos + SRIOV_CTRL, st.ctrl);
      this.#setNumVfs(dev, st, 0);
      throw sysErr("ENOMEM", `${dev.name}: device refused VF Enable for ${nr} VFs`);
    }
    st.numVFs = nr;
    const added: PciDev[] = [];
    try {
      for (let i = 0; i < nr; i++) added.push(this.#addVirtfn(dev, st, i));
    } catch (e) {
      for (const vf of added.reverse()) this.#removeVirtfn(st, vf);
      st.ctrl &= ~(SRIOV_CTRL_VFE | SRIOV_CTRL_MSE);
      dev.write16(st.pos + SRIOV_CTRL, st.ctrl);
      this.#setNumVfs(dev, st, 0);
      st.numVFs = 0;
      throw e;
    }
    // Every VF was probed as it was added (pci_iov_add_virtfn → pci_bus_add_device), then
    // KOBJ_CHANGE on the PF (iov.c: sriov_add_vfs).
    this.#uevent({ action: "change", devpath: `/${dev.devpath}`, subsystem: "pci", env: { NUM_VFS: String(nr) } });
  }

  /** pci_disable_sriov: VFs removed, VFE|MSE cleared, NumVFs written 0, KOBJ_CHANGE. */
  disableSriov(dev: PciDev): void {
    const st = this.sriov.get(dev);
    if (st === undefined || st.numVFs === 0) return;
    for (const vf of [...st.vfs].reverse()) this.#removeVirtfn(st, vf);
    st.ctrl &= ~(SRIOV_CTRL_VFE | SRIOV_CTRL_MSE);
    dev.write16(st.pos + SRIOV_CTRL, st.ctrl);
    this.#setNumVfs(dev, st, 0);
    st.numVFs = 0;
    this.#uevent({ action: "change", devpath: `/${dev.devpath}`, subsystem: "pci", env: { NUM_VFS: "0" } });
  }

  /** pci_iov_add_virtfn. */
  #addVirtfn(pf: PciDev, st: SriovState, id: number): PciDev {
    const bus = virtfnBus(pf, st, id);
    const devfn = virtfnDevfn(pf, st, id);
    const vf = new PciDev(this.platform, bus, devfn);
    vf.parent = pf.parent;
    vf.physfn = pf;
    vf.vfIndex = id;
    // Vendor and device come from the PF (a VF's own ID registers read 0xFFFF on real hardware).
    vf.readHeader();
    const classRev = vf.read32(0x08);
    if (classRev === 0xffffffff) throw sysErr("EIO", `${pf.name}: VF ${id} at ${vf.name} does not respond`);
    vf.vendor = pf.vendor;
    vf.device = st.vfDevice;
    for (let i = 0; i < 6; i++) {
      const b = st.bars[i];
      if (b === undefined) continue;
      vf.bars[i] = { index: i, size: b.size, is64: b.is64, prefetchable: b.prefetchable, io: false, address: b.base + id * b.size };
    }
    // VFs ignore their own Memory Space Enable (no_command_memory); bus mastering still counts.
    vf.setCommandBits(PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY, true);
    this.#computeDevpath(vf);
    st.vfs.push(vf);
    // pci_bus_add_device probes the VF right away when sriov_drivers_autoprobe is on; a failed
    // probe leaves it unbound and does not fail the enable.
    this.#addDevice(vf, st.driversAutoprobe);
    return vf;
  }

  #removeVirtfn(st: SriovState, vf: PciDev): void {
    this.unbind(vf);
    this.#uevent({ action: "remove", devpath: `/${vf.devpath}`, subsystem: "pci", env: {} });
    const i = this.devices.indexOf(vf);
    if (i >= 0) this.devices.splice(i, 1);
    const j = st.vfs.indexOf(vf);
    if (j >= 0) st.vfs.splice(j, 1);
  }
}

/** pci_iov_virtfn_bus: PF bus + ((PF devfn + offset + stride × id) >> 8). */
export function virtfnBus(pf: PciDev, st: SriovState, id: number): number {
  return pf.bus + ((pf.devfn + st.offset + st.stride * id) >> 8);
}
/** pci_iov_virtfn_devfn: (PF devfn + offset + stride × id) & 0xff. */
export function virtfnDevfn(pf: PciDev, st: SriovState, id: number): number {
  return (pf.devfn + st.offset + st.stride * id) & 0xff;
}

/**
 * kstrtou16(s, 0): optional '+', base from the prefix (0x hex, 0 octal, else decimal), one
 * trailing newline allowed; -EINVAL if it does not parse, -ERANGE if it does not fit 16 bits.
 */
export function kstrtou16(input: string): number {
  let s = input.endsWith("\n") ? input.slice(0, -1) : input;
  if (s.startsWith("+")) s = s.slice(1);
  let base = 10;
  if (/^0[xX]/.test(s)) {
    base = 16;
    s = s.slice(2);
  } else if (s.length > 1 && s.startsWith("0")) {
    base = 8;
    s = s.slice(1);
  }
  const re = base === 16 ? /^[0-9a-fA-F]+$/ : base === 8 ? /^[0-7]+$/ : /^[0-9]+$/;
  if (!re.test(s)) throw sysErr("EINVAL");
  const v = parseInt(s, base);
  if (!Number.isSafeInteger(v) || v > 0xffff) throw sysErr("ERANGE");
  return v;
}

/** kstrtobool: y/Y/1/n/N/0 by the first character, or "on"/"off". */
export function kstrtobool(input: string): boolean {
  const s = input;
  const c = s[0];
  if (c === "y" || c === "Y" || c === "1") return true;
  if (c === "n" || c === "N" || c === "0") return false;
  if ((c === "o" || c === "O") && s.length >= 2) {
    const d = s[1];
    if (d === "n" || d === "N") return true;
    if (d === "f" || d === "F") return false;
  }
  throw sysErr("EINVAL");
}

/**
 * The guest's PCI core, part 1: enumeration and resources, through configuration cycles only
 * (DESIGN.md §3.1). What x86 firmware and Linux's drivers/pci/probe.c do between them: walk bus 0,
 * follow type-1 bridges by their secondary/subordinate bus numbers (assigning them when firmware
 * left them 0), read the standard and extended capability lists, detect 4096-byte configuration
 * space, size every BAR with the all-ones probe and assign it from the platform's MMIO window,
 * program bridge windows, and enable ARI forwarding on a bridge whose child has the ARI capability.
 */
import type { AccessWidth, PciPlatform } from "../pci/platform.js";

// The register numbers are include/uapi/linux/pci_regs.h's, shared with the device model (src/pci).
export {
  PCI_CAP_ID_PM,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_VNDR,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSIX,
  PCI_EXT_CAP_ID_ARI,
  PCI_EXT_CAP_ID_SRIOV,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_INTX_DISABLE,
} from "../pci/regs.js";
import { PCI_CAP_ID_EXP, PCI_COMMAND_IO, PCI_COMMAND_MEMORY, PCI_COMMAND_MASTER, PCI_COMMAND_INTX_DISABLE, PCI_EXT_CAP_ID_ARI } from "../pci/regs.js";

/** One BAR as the guest assigned it. */
export interface PciBar {
  readonly index: number;
  readonly size: number;
  readonly is64: boolean;
  readonly prefetchable: boolean;
  readonly io: boolean;
  /** Guest-physical address (0 when the BAR could not be assigned). */
  address: number;
}

/** "0000:BB:DD.F", the name Linux gives a PCI function (domain 0 only in the model). */
export function pciName(bus: number, devfn: number): string {
  const h = (n: number, w: number): string => n.toString(16).padStart(w, "0");
  return `0000:${h(bus, 2)}:${h(devfn >> 3, 2)}.${devfn & 7}`;
}

/** A discovered PCI function: Linux's struct pci_dev, reduced to what the model needs. */
export class PciDev {
  readonly name: string;
  vendor = 0xffff;
  device = 0xffff;
  classCode = 0; // 24-bit base/sub/prog-if
  revision = 0;
  headerType = 0;
  subsystemVendor = 0;
  subsystemDevice = 0;
  cfgSize: 256 | 4096 = 256;
  readonly caps = new Map<number, number>();
  readonly extCaps = new Map<number, number>();
  readonly bars: (PciBar | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined];
  /** Set for bridges: the bus numbers behind it. */
  secondary = 0;
  subordinate = 0;
  /** ARI Forwarding Enable set on this bridge (PCIe Device Control 2 bit 5). */
  ariForwarding = false;
  readonly children: PciDev[] = [];
  /** Upstream bridge; undefined on the root bus. */
  parent: PciDev | undefined;
  /** Set on a VF: its PF and 0-based VF index. */
  physfn: PciDev | undefined;
  vfIndex = -1;
  /** sysfs directory name of the device path, relative to /sys/devices. */
  devpath = "";

  constructor(
    readonly platform: PciPlatform,
    readonly bus: number,
    readonly devfn: number,
  ) {
    this.name = pciName(bus, devfn);
  }

  get isBridge(): boolean {
    return (this.headerType & 0x7f) === 1;
  }
  get isVirtfn(): boolean {
    return this.physfn !== undefined;
  }
  get slot(): number {
    return this.devfn >> 3;
  }
  get fn(): number {
    return this.devfn & 7;
  }

  read(offset: number, width: AccessWidth): number {
    return this.platform.configRead(this.bus, this.devfn, offset, width);
  }
  read8(offset: number): number {
    return this.read(offset, 1);
  }
  read16(offset: number): number {
    return this.read(offset, 2);
  }
  read32(offset: number): number {
    return this.read(offset, 4) >>> 0;
  }
  write(offset: number, width: AccessWidth, value: number): void {
    this.platform.configWrite(this.bus, this.devfn, offset, width, value);
  }
  write8(offset: number, v: number): void {
    this.write(offset, 1, v & 0xff);
  }
  write16(offset: number, v: number): void {
    this.write(offset, 2, v & 0xffff);
  }
  write32(offset: number, v: number): void {
    this.write(offset, 4, v >>> 0);
  }

  /** The whole configuration space as the guest can read it (sysfs `config`). */
  readConfig(): Uint8Array {
    const out = new Uint8Array(this.cfgSize);
    for (let o = 0; o < this.cfgSize; o += 4) {
      const v = this.read32(o);
      out[o] = v & 0xff;
      out[o + 1] = (v >>> 8) & 0xff;
      out[o + 2] = (v >>> 16) & 0xff;
      out[o + 3] = (v >>> 24) & 0xff;
    }
    return out;
  }

  setCommandBits(bits: number, on: boolean): void {
    const cmd = this.read16(0x04);
    this.write16(0x04, on ? cmd | bits : cmd & ~bits);
  }

  /** Reads the identity registers and both capability lists (probe.c: pci_setup_device). */
  readHeader(): void {
    const id = this.read32(0x00);
    this.vendor = id & 0xffff;
    this.device = id >>> 16;
    const cr = this.read32(0x08);
    this.revision = cr & 0xff;
    this.classCode = cr >>> 8;
    this.headerType = this.read8(0x0e);
    if ((this.headerType & 0x7f) === 0) {
      this.subsystemVendor = this.read16(0x2c);
      this.subsystemDevice = this.read16(0x2e);
    }
    this.#readCaps();
  }

  #readCaps(): void {
    this.caps.clear();
    this.extCaps.clear();
    // Status bit 4: Capabilities List (PCI 3.0 §6.2.3).
    if ((this.read16(0x06) & 0x10) !== 0) {
      let pos = this.read8(0x34) & 0xfc;
      // Bounded walk: at most 48 capabilities fit in 192 bytes (as Linux's PCI_FIND_CAP_TTL).
      for (let ttl = 48; pos >= 0x40 && ttl > 0; ttl--) {
        const id = this.read8(pos);
        if (id === 0xff) break;
        if (!this.caps.has(id)) this.caps.set(id, pos);
        pos = this.read8(pos + 1) & 0xfc;
      }
    }
    // Extended configuration space exists only on PCIe functions, and Linux treats it as absent
    // when the dword at 0x100 reads all ones (probe.c: pci_cfg_space_size_ext).
    this.cfgSize = 256;
    if (this.caps.has(PCI_CAP_ID_EXP)) {
      const hdr = this.read32(0x100);
      if (hdr !== 0xffffffff) {
        this.cfgSize = 4096;
        let pos = 0x100;
        // (4096 - 256) / 8 headers at most (PCI_CFG_SPACE_EXP_SIZE - PCI_CFG_SPACE_SIZE) / 8.
        for (let ttl = 480; pos >= 0x100 && ttl > 0; ttl--) {
          const h = this.read32(pos);
          if (h === 0 || h === 0xffffffff) break;
          const id = h & 0xffff;
          if (!this.extCaps.has(id)) this.extCaps.set(id, pos);
          pos = (h >>> 20) & 0xffc;
        }
      }
    }
  }

  /** PCIe Device/Port Type from the Express capability, or -1 for conventional PCI. */
  get pcieType(): number {
    const pos = this.caps.get(PCI_CAP_ID_EXP);
    if (pos === undefined) return -1;
    return (this.read16(pos + 2) >> 4) & 0xf;
  }
}

/** A bump allocator over the platform's MMIO window: x86 firmware's BAR placement, simplified. */
export class MmioAllocator {
  #next: number;
  readonly #end: number;
  constructor(window: { readonly base: number; readonly size: number }) {
    this.#next = window.base;
    this.#end = window.base + window.size;
  }
  get next(): number {
    return this.#next;
  }
  alignTo(align: number): void {
    this.#next = Math.ceil(this.#next / align) * align;
  }
  /** Returns an address aligned to `align`, or undefined when the window is exhausted. */
  alloc(size: number, align: number): number | undefined {
    const a = Math.ceil(this.#next / align) * align;
    if (a + size > this.#end) return undefined;
    this.#next = a + size;
    return a;
  }
}

/**
 * Sizes one BAR register at `reg` with the all-ones probe, decoding disabled around it (as
 * pci_read_base does). Returns the size and type, or undefined for an unimplemented BAR.
 */
export function sizeBar(dev: PciDev, reg: number): { size: number; is64: boolean; prefetchable: boolean; io: boolean } | undefined {
  const orig = dev.read32(reg);
  dev.write32(reg, 0xffffffff);
  const mask = dev.read32(reg);
  dev.write32(reg, orig);
  // A BAR that keeps no bit, or a function that reads all ones throughout, implements nothing.
  if (mask === 0 || (mask === 0xffffffff && orig === 0xffffffff)) return undefined;
  const io = (orig & 1) === 1;
  if (io) {
    const m = mask & 0xfffffffc;
    if (m === 0) return undefined;
    return { size: ((~m >>> 0) & 0xffff) + 1, is64: false, prefetchable: false, io };
  }
  const is64 = ((orig >>> 1) & 3) === 2;
  const prefetchable = (orig & 8) !== 0;
  let size: number;
  if (is64) {
    const origHi = dev.read32(reg + 4);
    dev.write32(reg + 4, 0xffffffff);
    const maskHi = dev.read32(reg + 4);
    dev.write32(reg + 4, origHi);
    const lo = mask & 0xfffffff0;
    // size = ~(hi:lo) + 1 over 64 bits; computed in BigInt, then checked to fit a number.
    const full = (BigInt(maskHi) << 32n) | BigInt(lo);
    if (full === 0n) return undefined;
    const s = (~full & 0xffffffffffffffffn) + 1n;
    if (s > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    size = Number(s);
  } else {
    const lo = mask & 0xfffffff0;
    if (lo === 0) return undefined;
    size = (~lo >>> 0) + 1;
  }
  return { size, is64, prefetchable, io };
}

/** Writes a memory BAR's address (both halves for a 64-bit BAR). */
export function writeBarAddress(dev: PciDev, reg: number, is64: boolean, address: number): void {
  const cur = dev.read32(reg);
  dev.write32(reg, ((address >>> 0) & 0xfffffff0) | (cur & 0xf));
  if (is64) dev.write32(reg + 4, Math.floor(address / 0x1_0000_0000) >>> 0);
}

export interface EnumerationResult {
  readonly devices: PciDev[];
  readonly roots: PciDev[];
}

/**
 * Enumerates the whole hierarchy below bus 0 and assigns resources. `onFunction` sees every
 * function right after its header is read (the SR-IOV core hooks sriov_init there, before BARs
 * of later functions are placed, exactly as pci_iov_init runs inside pci_setup_device).
 */
export function enumerate(platform: PciPlatform, mmio: MmioAllocator, onFunction: (dev: PciDev) => void): EnumerationResult {
  const devices: PciDev[] = [];
  const roots: PciDev[] = [];
  let nextBus = 1;

  const scanBus = (bus: number, parent: PciDev | undefined): void => {
    // Under a PCIe downstream or root port only device 0 exists (probe.c: only_one_child).
    const maxSlot = parent !== undefined && parent.pcieType >= 0 ? 1 : 32;
    for (let slot = 0; slot < maxSlot; slot++) {
      const id0 = platform.configRead(bus, slot << 3, 0, 4) >>> 0;
      if ((id0 & 0xffff) === 0xffff || (id0 & 0xffff) === 0) continue;
      const ht = platform.configRead(bus, slot << 3, 0x0e, 1);
      const multi = (ht & 0x80) !== 0;
      // With ARI forwarding on the parent, functions follow the ARI Next Function Number chain.
      const ari = parent?.ariForwarding === true;
      const fns: number[] = [0];
      if (!ari && multi) for (let f = 1; f < 8; f++) fns.push(f);
      for (let k = 0; k < fns.length; k++) {
        const f = fns[k] ?? 0;
        const devfn = ari ? f : (slot << 3) | f;
        const id = platform.configRead(bus, devfn, 0, 4) >>> 0;
        if ((id & 0xffff) === 0xffff || (id & 0xffff) === 0) continue;
        const dev = new PciDev(platform, bus, devfn);
        dev.parent = parent;
        dev.readHeader();
        devices.push(dev);
        if (parent === undefined) roots.push(dev);
        else parent.children.push(dev);
        if (ari && k < 255) {
          const a = dev.extCaps.get(PCI_EXT_CAP_ID_ARI);
          const nfn = a === undefined ? 0 : (dev.read16(a + 4) >> 8) & 0xff;
          if (nfn > f) fns.push(nfn);
        }
        if (dev.isBridge) {
          setupBridge(dev);
        } else {
          assignBars(dev, mmio);
          onFunction(dev);
        }
      }
    }
  };

  const setupBridge = (br: PciDev): void => {
    // Firmware may have numbered the bridge already; otherwise number it depth-first.
    let sec = br.read8(0x19);
    if (sec === 0 || sec === 0xff) {
      sec = nextBus;
      br.write8(0x18, br.bus);
      br.write8(0x19, sec);
      br.write8(0x1a, 0xff);
    }
    nextBus = Math.max(nextBus, sec + 1);
    br.secondary = sec;
    // ARI forwarding (PCIe r5 §7.5.3.16): Device Capabilities 2 bit 5 supported, Device Control 2
    // bit 5 enable. Linux enables it in pci_configure_ari when the child function 0 has ARI.
    const exp = br.caps.get(PCI_CAP_ID_EXP);
    const childId = platform.configRead(sec, 0, 0, 4) >>> 0;
    if (exp !== undefined && (childId & 0xffff) !== 0xffff && (br.read32(exp + 0x24) & 0x20) !== 0) {
      const child = new PciDev(platform, sec, 0);
      child.readHeader();
      if (child.extCaps.has(PCI_EXT_CAP_ID_ARI)) {
        br.write16(exp + 0x28, br.read16(exp + 0x28) | 0x20);
        br.ariForwarding = true;
      }
    }
    // Place the subtree on a 1 MiB boundary: bridge memory windows have 1 MiB granularity.
    mmio.alignTo(0x100000);
    const start = mmio.next;
    scanBus(sec, br);
    mmio.alignTo(0x100000);
    const end = mmio.next;
    const sub = Math.max(sec, nextBus - 1);
    br.write8(0x1a, sub);
    br.subordinate = sub;
    programBridgeWindows(br, start, end);
    br.setCommandBits(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, true);
  };

  scanBus(0, undefined);
  return { devices, roots };
}

/** Memory and prefetchable windows of a type-1 header (PCI-to-PCI Bridge spec §3.2.5.8–9). */
function programBridgeWindows(br: PciDev, start: number, end: number): void {
  if (end <= start) {
    // Base above limit closes a window.
    br.write16(0x20, 0xfff0);
    br.write16(0x22, 0x0000);
    br.write16(0x24, 0xfff0);
    br.write16(0x26, 0x0000);
    br.write32(0x28, 0);
    br.write32(0x2c, 0);
    return;
  }
  const last = end - 1;
  if (last < 0x1_0000_0000) {
    br.write16(0x20, (start >>> 16) & 0xfff0);
    br.write16(0x22, (last >>> 16) & 0xfff0);
  }
  br.write16(0x24, ((start >>> 16) & 0xfff0) | 1);
  br.write16(0x26, ((last >>> 16) & 0xfff0) | 1);
  br.write32(0x28, Math.floor(start / 0x1_0000_0000));
  br.write32(0x2c, Math.floor(last / 0x1_0000_0000));
}

/** Sizes and assigns the six BARs of a type-0 function, then enables decoding and bus mastering. */
export function assignBars(dev: PciDev, mmio: MmioAllocator): void {
  dev.setCommandBits(PCI_COMMAND_MEMORY | PCI_COMMAND_IO, false);
  for (let i = 0; i < 6; i++) {
    const reg = 0x10 + i * 4;
    const s = sizeBar(dev, reg);
    if (s === undefined) continue;
    let address = 0;
    if (!s.io) {
      address = mmio.alloc(s.size, Math.max(s.size, 4096)) ?? 0;
      if (address !== 0) writeBarAddress(dev, reg, s.is64, address);
    }
    dev.bars[i] = { index: i, ...s, address };
    if (s.is64) i++;
  }
  dev.setCommandBits(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE, true);
}

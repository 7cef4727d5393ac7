import { ConfigSpace, CONFIG_SPACE_SIZE, EXPRESS_CONFIG_SPACE_SIZE, allOnes } from "./config-space.js";
import { PciError } from "./errors.js";
import type { AccessWidth } from "./platform.js";
import {
  PCI_BASE_ADDRESS_0, PCI_BASE_ADDRESS_MEM_PREFETCH, PCI_BASE_ADDRESS_MEM_TYPE_64, PCI_BASE_ADDRESS_SPACE_IO,
  PCI_BRIDGE_CONTROL, PCI_CACHE_LINE_SIZE, PCI_CAPABILITY_LIST, PCI_COMMAND, PCI_COMMAND_INTX_DISABLE, PCI_COMMAND_IO,
  PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY, PCI_COMMAND_PARITY, PCI_COMMAND_SERR, PCI_DEVICE_ID, PCI_EXT_CAP_START,
  PCI_HEADER_TYPE, PCI_INTERRUPT_LINE, PCI_INTERRUPT_PIN, PCI_IO_BASE, PCI_IO_LIMIT, PCI_LATENCY_TIMER, PCI_MEMORY_BASE,
  PCI_MEMORY_LIMIT, PCI_PREF_BASE_UPPER32, PCI_PREF_LIMIT_UPPER32, PCI_PREF_MEMORY_BASE, PCI_PREF_MEMORY_LIMIT,
  PCI_PRIMARY_BUS, PCI_REVISION_ID, PCI_ROM_ADDRESS, PCI_ROM_ADDRESS1, PCI_ROM_ADDRESS_ENABLE, PCI_SEC_STATUS,
  PCI_STATUS, PCI_STATUS_CAP_LIST, PCI_STATUS_RW1C, PCI_STD_CAP_START, PCI_SUBSYSTEM_ID, PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from "./regs.js";

/**
 * What a configuration write (or a reset) asks of the function's owner. The model never creates
 * or destroys anything itself (cloud-hypervisor's write_config_register returns BAR moves the same
 * way): the vmm decides what a VF is and where its backend comes from.
 */
export type PciEffect =
  /** SR-IOV VF Enable went 0 → 1: VFs 1..numVfs exist from now on (PCIe SR-IOV §3.3.3.1). */
  | { readonly kind: "vfs-enabled"; readonly numVfs: number }
  /** VF Enable went 1 → 0 (by a write or a PF reset): VFs 1..numVfs are gone. */
  | { readonly kind: "vfs-disabled"; readonly numVfs: number }
  /** The function was reset by Function Level Reset (PCIe §6.6.2) or a D3hot → D0 transition. */
  | { readonly kind: "function-reset"; readonly reason: "flr" | "power-management" }
  /** The Power Management capability moved the function to another D-state (PCI PM 1.2 §5.4). */
  | { readonly kind: "power-state"; readonly state: PowerState };

export type PowerState = "D0" | "D1" | "D2" | "D3hot";
export type BarKind = "io" | "mem32" | "mem64";

export interface BarSpec {
  readonly kind: BarKind;
  /** Bytes; a power of two, at least 4 (I/O) or 16 (memory). */
  readonly size: number;
  readonly prefetchable?: boolean;
}

/** A register window inside a BAR (MSI-X table, virtio common configuration, a doorbell...). */
export interface BarRegionHandler {
  read(offset: number, width: AccessWidth): number;
  write(offset: number, width: AccessWidth, value: number): void;
}

export type MsiSink = (address: number, data: number) => void;

export interface PciFunctionOptions {
  readonly vendorId: number;
  readonly deviceId: number;
  /** 24 bits: base class << 16 | subclass << 8 | programming interface. */
  readonly classCode: number;
  readonly revision?: number;
  readonly subsystemVendorId?: number;
  readonly subsystemId?: number;
  /** PCI Express: 4096-byte configuration space with extended capabilities. */
  readonly express: boolean;
  /** Header Type bit 7 (PCI 3.0 §6.2.1): more functions live on this device. */
  readonly multifunction?: boolean;
  /** 0 for an endpoint (the default), 1 for a bridge such as a PCIe root port. */
  readonly headerType?: 0 | 1;
  /** Interrupt Pin: 0 none, 1..4 INTA..INTD; default 1 for a PF, 0 for a VF. */
  readonly interruptPin?: number;
  /** Set when an SR-IOV capability creates this function as one of its VFs. */
  readonly virtualFunction?: VfParentLink;
}

/**
 * How a VF finds its BARs: they are not in its own header (VF BAR registers read 0, PCIe SR-IOV
 * §3.5) but in its PF's SR-IOV capability. Implemented by SriovCapability.
 */
export interface VfParent {
  readonly pf: PciFunction;
  vfBarSpec(bar: number): BarSpec | undefined;
  /** The address of VF `index` (0-based)'s BAR, or undefined when unassigned. */
  vfBarAddress(bar: number, index: number): number | undefined;
  /** Whether VF `index` (0-based) exists: VF Enable set and index < NumVFs. */
  vfPresent(index: number): boolean;
}
export interface VfParentLink {
  readonly parent: VfParent;
  /** 0-based: VF n in the specification's 1-based numbering is index n - 1. */
  readonly index: number;
}

export interface CapabilityInfo {
  readonly id: number;
  readonly offset: number;
  readonly length: number;
  readonly extended: boolean;
}

type WriteHook = (offset: number, width: AccessWidth) => readonly PciEffect[] | undefined;
/**
 * Runs before a configuration read that touches the hook's bytes, with the access as the guest
 * made it. It stores the current value of the bytes its capability owns (ConfigSpace.poke); the
 * generic read then assembles the answer, so an access spanning hooked and plain bytes reads both.
 */
export type ConfigReadHook = (offset: number, width: AccessWidth) => void;
type ResetHook = () => readonly PciEffect[] | undefined;

interface Region {
  readonly offset: number;
  readonly length: number;
  readonly handler: BarRegionHandler;
}

/**
 * Bumped whenever a write may move a BAR or change decoding anywhere (command, BARs, SR-IOV,
 * power state, reset, attach). Buses cache their address decoders against it.
 */
export const decodeEpoch = { value: 0 };

const TWO_32 = 0x1_0000_0000;
const MAX_ADDRESS = Number.MAX_SAFE_INTEGER + 1; // 2^53: guest-physical addresses are numbers
const powerStates: readonly PowerState[] = ["D0", "D1", "D2", "D3hot"];

function isPowerOfTwo(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}

function checkU(name: string, v: number | undefined, bits: number): number {
  const value = v ?? 0;
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** bits) {
    throw new PciError("PCI_BAD_ARGUMENT", `${name} must be an unsigned ${bits}-bit integer, not ${value}`, { field: name, value });
  }
  return value;
}

/** The register encoding and write mask of a BAR (PCI 3.0 §6.2.5.1). */
export function barEncoding(spec: BarSpec): { low: number; lowMask: number; highMask: number } {
  const { kind, size } = spec;
  if (kind === "io") {
    return { low: PCI_BASE_ADDRESS_SPACE_IO, lowMask: (~(size - 1) & 0xffff_fffc) >>> 0, highMask: 0 };
  }
  const type = (kind === "mem64" ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) | (spec.prefetchable === true ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
  if (size >= TWO_32) {
    // Sizes of 4 GiB and more: the low dword's address bits are all read-only zero.
    return { low: type, lowMask: 0, highMask: (~(size / TWO_32 - 1)) >>> 0 };
  }
  return { low: type, lowMask: (~(size - 1) & 0xffff_fff0) >>> 0, highMask: 0xffff_ffff };
}

/** Validates a BAR spec; `what` names it in the error. */
export function checkBarSpec(what: string, spec: BarSpec, allowIo: boolean): void {
  const { kind, size } = spec;
  const bad = (why: string): never => {
    throw new PciError("PCI_BAD_BAR", `${what}: ${why}`, { kind, size });
  };
  if (kind !== "io" && kind !== "mem32" && kind !== "mem64") bad(`unknown kind ${String(kind)}`);
  if (kind === "io" && !allowIo) bad("must be a memory BAR");
  if (!isPowerOfTwo(size)) bad(`size ${size} is not a power of two`);
  if (kind === "io" && (size < 4 || size > 256)) bad("an I/O BAR is 4..256 bytes (PCI 3.0 §6.2.5.1)");
  if (kind !== "io" && size < 16) bad("a memory BAR is at least 16 bytes");
  if (kind === "mem32" && size > 2 ** 31) bad("a 32-bit memory BAR is at most 2 GiB");
  if (kind === "mem64" && size > 2 ** 52) bad("a 64-bit memory BAR is at most 2^52 bytes here (addresses are numbers)");
  if (kind === "io" && spec.prefetchable === true) bad("an I/O BAR cannot be prefetchable");
}

/**
 * Decodes the address in a BAR register pair, or undefined when the BAR is unassigned: address 0,
 * or a range that does not fit its address space (QEMU's pci_bar_address does the same, which is
 * also what makes a BAR in the middle of sizing — all ones written — decode nothing).
 */
export function decodeBarAddress(kind: BarKind, low: number, high: number, span: number): number | undefined {
  let addr: number;
  let limit: number;
  if (kind === "io") {
    addr = (low & 0xffff_fffc) >>> 0;
    limit = 0x1_0000; // x86 port space
  } else if (kind === "mem32") {
    addr = (low & 0xffff_fff0) >>> 0;
    limit = TWO_32;
  } else {
    addr = high * TWO_32 + ((low & 0xffff_fff0) >>> 0);
    limit = MAX_ADDRESS;
  }
  if (addr === 0 || addr + span > limit - (kind === "mem32" ? 1 : 0)) return undefined;
  return addr;
}

/**
 * One PCI function: configuration space (type 0 or type 1 header), BARs with their register
 * windows, a capability allocator for the standard and extended lists, hooks by which
 * capabilities react to writes and resets, and the MSI sink interrupts leave through.
 */
export class PciFunction {
  readonly config: ConfigSpace;
  readonly express: boolean;
  readonly headerType: 0 | 1;
  readonly vendorId: number;
  readonly deviceId: number;
  readonly classCode: number;
  readonly virtualFunction: VfParentLink | undefined;
  readonly #bars: (BarSpec | undefined)[] = [undefined, undefined, undefined, undefined, undefined, undefined];
  #rom: number | undefined;
  readonly #regions: Region[][] = [[], [], [], [], [], []];
  readonly #caps: CapabilityInfo[] = [];
  readonly #writeHooks: { start: number; end: number; hook: WriteHook }[] = [];
  // Undefined until a capability registers a read hook: configRead's fast path tests only this.
  #readHooks: { start: number; end: number; hook: ConfigReadHook }[] | undefined;
  #readHookStart = 0;
  #readHookEnd = 0;
  readonly #resetHooks: ResetHook[] = [];
  readonly #attached: object[] = [];
  #msiSink: MsiSink | undefined;
  #power = 0;
  #enabled = true;
  #lastStdCap = 0;
  #lastExtCap = 0;

  constructor(opts: PciFunctionOptions) {
    this.vendorId = checkU("vendorId", opts.vendorId, 16);
    this.deviceId = checkU("deviceId", opts.deviceId, 16);
    this.classCode = checkU("classCode", opts.classCode, 24);
    const revision = checkU("revision", opts.revision, 8);
    const ssvid = checkU("subsystemVendorId", opts.subsystemVendorId, 16);
    const ssid = checkU("subsystemId", opts.subsystemId, 16);
    this.express = opts.express;
    this.headerType = opts.headerType ?? 0;
    if (this.headerType !== 0 && this.headerType !== 1) {
      throw new PciError("PCI_BAD_ARGUMENT", `header type must be 0 or 1, not ${String(this.headerType)}`);
    }
    this.virtualFunction = opts.virtualFunction;
    if (this.virtualFunction !== undefined && (!this.express || this.headerType !== 0)) {
      throw new PciError("PCI_BAD_ARGUMENT", "a VF is a PCI Express endpoint (type 0 header)");
    }
    const pin = checkU("interruptPin", opts.interruptPin ?? (this.virtualFunction === undefined ? 1 : 0), 8);
    if (pin > 4) throw new PciError("PCI_BAD_ARGUMENT", `interrupt pin ${pin} is not 0..4 (none, INTA..INTD)`);

    const c = (this.config = new ConfigSpace(this.express ? EXPRESS_CONFIG_SPACE_SIZE : CONFIG_SPACE_SIZE));
    c.claim(0, PCI_STD_CAP_START);
    // A VF's Vendor ID and Device ID read 0xFFFF (PCIe SR-IOV §3.4.1.1, .2): software takes them
    // from the PF's Vendor ID and the SR-IOV VF Device ID field.
    const isVf = this.virtualFunction !== undefined;
    c.setU16(PCI_VENDOR_ID, isVf ? 0xffff : this.vendorId);
    c.setU16(PCI_DEVICE_ID, isVf ? 0xffff : this.deviceId);
    // Command (PCI 3.0 §6.2.2): I/O, Memory, Bus Master, Parity Error Response, SERR# Enable and
    // INTx Disable are RW; the rest is hardwired 0 on PCIe (PCIe Base §7.5.1.1.3). A VF has no
    // INTx and no I/O space (SR-IOV §3.4.1.3); its Memory bit gates its BARs as in QEMU.
    c.setWmask(PCI_COMMAND, 2, isVf
      ? PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR
      : PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
    // Status error bits are RW1C (PCI 3.0 §6.2.3).
    c.setW1c(PCI_STATUS, 2, PCI_STATUS_RW1C);
    c.setU32(PCI_REVISION_ID, (revision | (this.classCode << 8)) >>> 0);
    // Cache Line Size is RW with no effect on PCIe; Latency Timer is hardwired 0 on PCIe
    // (PCIe Base §7.5.1.1.7, .8) and RW on conventional PCI.
    c.setWmask(PCI_CACHE_LINE_SIZE, 1, 0xff);
    if (!this.express) c.setWmask(PCI_LATENCY_TIMER, 1, 0xff);
    c.setU8(PCI_HEADER_TYPE, this.headerType | (opts.multifunction === true ? 0x80 : 0));
    c.setWmask(PCI_INTERRUPT_LINE, 1, 0xff);
    c.setU8(PCI_INTERRUPT_PIN, pin);
    if (this.headerType === 0) {
      c.setU16(PCI_SUBSYSTEM_VENDOR_ID, ssvid);
      c.setU16(PCI_SUBSYSTEM_ID, ssid);
    } else {
      this.#initBridge();
    }
  }

  /** The type 1 header of a PCI-to-PCI bridge (PCI-to-PCI Bridge 1.2 §3.2; PCIe Base §7.5.1.3). */
  #initBridge(): void {
    const c = this.config;
    c.setWmask(PCI_PRIMARY_BUS, 4, 0x00ff_ffff); // primary, secondary, subordinate; latency RO 0
    c.setWmask(PCI_IO_BASE, 1, 0xf0);
    c.setWmask(PCI_IO_LIMIT, 1, 0xf0);
    c.setW1c(PCI_SEC_STATUS, 2, PCI_STATUS_RW1C);
    c.setWmask(PCI_MEMORY_BASE, 2, 0xfff0);
    c.setWmask(PCI_MEMORY_LIMIT, 2, 0xfff0);
    // 64-bit prefetchable window (type 1 in the low nibble).
    c.setU16(PCI_PREF_MEMORY_BASE, 0x1);
    c.setU16(PCI_PREF_MEMORY_LIMIT, 0x1);
    c.setWmask(PCI_PREF_MEMORY_BASE, 2, 0xfff0);
    c.setWmask(PCI_PREF_MEMORY_LIMIT, 2, 0xfff0);
    c.setWmask(PCI_PREF_BASE_UPPER32, 4, 0xffff_ffff);
    c.setWmask(PCI_PREF_LIMIT_UPPER32, 4, 0xffff_ffff);
    // Bridge Control: parity response, SERR#, ISA, VGA, master abort mode, secondary bus reset.
    c.setWmask(PCI_BRIDGE_CONTROL, 2, 0x006f);
  }

  // ---------------------------------------------------------------- configuration access

  /**
   * A guest configuration read. Without read hooks it is the plain register read; with them, the
   * hooks of touched bytes run first (QEMU's config_read override: a capability supplies the
   * value of its bytes at read time), then the same read. The first onConfigRead replaces this
   * method on that function only, so functions without hooks run exactly the plain read.
   */
  configRead(offset: number, width: AccessWidth): number {
    return this.config.read(offset, width);
  }

  #hookedRead(hooks: readonly { start: number; end: number; hook: ConfigReadHook }[], offset: number, width: AccessWidth): number {
    // One range test skips the walk for reads far from every hook (most of a function's space).
    if (offset < this.#readHookEnd && offset + width > this.#readHookStart && this.config.inRange(offset, width)) {
      const end = offset + width;
      for (const h of hooks) if (h.start < end && offset < h.end) h.hook(offset, width);
    }
    return this.config.read(offset, width);
  }

  /** A guest configuration write: the generic masked store, then the hooks of touched bytes. */
  configWrite(offset: number, width: AccessWidth, value: number): PciEffect[] {
    if (!this.config.write(offset, width, value)) return [];
    // Only Command (decode enables) and the BAR/ROM/bridge-window registers move MMIO decoding;
    // other header writes (cache line, latency, interrupt line) must not rebuild the bus map.
    if ((offset < 0x06 && offset + width > 0x04) || (offset < 0x34 && offset + width > 0x10)) decodeEpoch.value++;
    let effects: PciEffect[] | undefined;
    const end = offset + width;
    for (const h of this.#writeHooks) {
      if (h.start < end && offset < h.end) {
        const e = h.hook(offset, width);
        if (e !== undefined && e.length > 0) (effects ??= []).push(...e);
      }
    }
    return effects ?? [];
  }

  /**
   * Function-level reset: every register and mask back to its power-on value, then every
   * capability's reset hook (MSI-X table, SR-IOV state). Region handlers stay mapped: they are
   * the device's wiring, not registers. Returns what the reset implies (e.g. "vfs-disabled").
   */
  reset(): PciEffect[] {
    this.config.restore();
    this.#power = 0;
    decodeEpoch.value++;
    const effects: PciEffect[] = [];
    for (const h of this.#resetHooks) {
      const e = h();
      if (e !== undefined) effects.push(...e);
    }
    return effects;
  }

  /** Runs `hook` after any write touching [offset, offset + length). For capabilities. */
  onConfigWrite(offset: number, length: number, hook: WriteHook): void {
    this.#writeHooks.push({ start: offset, end: offset + length, hook });
  }
  /**
   * Runs `hook` before any configuration read touching [offset, offset + length), so the
   * capability can store the current value of its bytes (e.g. virtio's PCI_CFG window, which
   * reads a BAR register into pci_cfg_data). For capabilities; the range must be in the space.
   * Functions without read hooks keep the plain read path.
   */
  onConfigRead(offset: number, length: number, hook: ConfigReadHook): void {
    if (!Number.isInteger(offset) || !Number.isInteger(length) || length <= 0 || offset < 0 || offset + length > this.config.size) {
      throw new PciError("PCI_BAD_ARGUMENT", `read hook range ${offset}+${length} outside ${this.config.size}-byte configuration space`, { offset, length });
    }
    if (this.#readHooks === undefined) {
      this.#readHookStart = offset;
      this.#readHookEnd = offset + length;
      const hooks: { start: number; end: number; hook: ConfigReadHook }[] = (this.#readHooks = []);
      // The fast path costs nothing: functions without hooks keep the plain method, and the first
      // hook shadows it with an own property on this function only.
      this.configRead = (off: number, width: AccessWidth): number => this.#hookedRead(hooks, off, width);
    }
    this.#readHookStart = Math.min(this.#readHookStart, offset);
    this.#readHookEnd = Math.max(this.#readHookEnd, offset + length);
    this.#readHooks.push({ start: offset, end: offset + length, hook });
  }
  /** Runs `hook` after the registers are restored by reset(). For capabilities. */
  onReset(hook: ResetHook): void {
    this.#resetHooks.push(hook);
  }

  get command(): number {
    return this.config.read(PCI_COMMAND, 2);
  }
  get status(): number {
    return this.config.read(PCI_STATUS, 2);
  }
  /** Bus Master Enable: without it the function may not send MSI/MSI-X messages or DMA. */
  get busMaster(): boolean {
    return (this.command & PCI_COMMAND_MASTER) !== 0;
  }
  /** Device-side error reporting: sets status bits (they are RW1C for the guest). */
  raiseStatus(bits: number): void {
    this.config.poke(PCI_STATUS, 2, this.status | (bits & PCI_STATUS_RW1C));
  }

  /**
   * Whether the function answers the bus: not after setEnabled(false), and a VF only while its
   * PF has it enabled. An absent function reads all ones and decodes no BAR.
   */
  get present(): boolean {
    if (!this.#enabled) return false;
    const vf = this.virtualFunction;
    return vf === undefined || vf.parent.vfPresent(vf.index);
  }

  /**
   * Switches the function off or on as a whole (QEMU pci_set_enabled: a powered-off slot, a
   * function the hypervisor withholds). Disabling resets it, so it comes back clean.
   */
  setEnabled(on: boolean): PciEffect[] {
    if (on === this.#enabled) return [];
    this.#enabled = on;
    decodeEpoch.value++;
    return on ? [] : this.reset();
  }

  get powerState(): PowerState {
    return powerStates[this.#power] ?? "D0";
  }
  /** Set by the Power Management capability; memory and I/O decode only in D0 (PCI PM 1.2 §5.4.1). */
  setPowerState(state: PowerState): void {
    this.#power = powerStates.indexOf(state);
    decodeEpoch.value++;
  }

  // ---------------------------------------------------------------- capabilities

  /**
   * Allocates a standard capability of `length` bytes (PCI 3.0 §6.7): dword aligned, first fit
   * from 0x40 unless `at` is given, linked at the tail of the list; its bytes are read-only
   * until the capability opens them. Returns its offset.
   */
  addCapability(id: number, length: number, at?: number): number {
    checkU("capability id", id, 8);
    if (!Number.isInteger(length) || length < 2) throw new PciError("PCI_BAD_ARGUMENT", `capability length ${length} < 2`);
    const off = this.#allocate(PCI_STD_CAP_START, CONFIG_SPACE_SIZE, length, at, id);
    const c = this.config;
    c.setU8(off, id);
    c.setU8(off + 1, 0);
    if (this.#lastStdCap === 0) {
      c.setU8(PCI_CAPABILITY_LIST, off);
      c.setU16(PCI_STATUS, c.read(PCI_STATUS, 2) | PCI_STATUS_CAP_LIST);
    } else {
      c.setU8(this.#lastStdCap + 1, off);
    }
    this.#lastStdCap = off;
    this.#caps.push({ id, offset: off, length, extended: false });
    return off;
  }

  /**
   * Allocates an extended capability (PCIe Base §7.6.3): header = id | version << 16 | next << 20,
   * the first one at 0x100, dword aligned, linked at the tail. Only on PCI Express functions.
   */
  addExtendedCapability(id: number, version: number, length: number, at?: number): number {
    if (!this.express) throw new PciError("PCI_NOT_EXPRESS", "extended capabilities need a PCI Express function (4096-byte space)");
    checkU("extended capability id", id, 16);
    checkU("extended capability version", version, 4);
    if (!Number.isInteger(length) || length < 4) throw new PciError("PCI_BAD_ARGUMENT", `extended capability length ${length} < 4`);
    if (this.#lastExtCap === 0 && at !== undefined && at !== PCI_EXT_CAP_START) {
      throw new PciError("PCI_CAP_NO_ROOM", "the first extended capability must be at 0x100 (PCIe Base §7.6.3)", { at });
    }
    const first = this.#lastExtCap === 0 ? PCI_EXT_CAP_START : undefined;
    const off = this.#allocate(PCI_EXT_CAP_START, EXPRESS_CONFIG_SPACE_SIZE, length, at ?? first, id);
    const c = this.config;
    c.setU32(off, (id | (version << 16)) >>> 0);
    if (this.#lastExtCap !== 0) {
      const prev = c.read(this.#lastExtCap, 4);
      c.setU32(this.#lastExtCap, ((prev & 0xfffff) | (off << 20)) >>> 0);
    }
    this.#lastExtCap = off;
    this.#caps.push({ id, offset: off, length, extended: true });
    return off;
  }

  #allocate(start: number, end: number, length: number, at: number | undefined, id: number): number {
    if (at !== undefined) {
      if (!Number.isInteger(at) || at % 4 !== 0 || at < start || at + length > end || !this.config.claim(at, length)) {
        throw new PciError("PCI_CAP_NO_ROOM", `capability 0x${id.toString(16)} does not fit at 0x${Number(at).toString(16)} (${length} bytes)`, { id, at, length });
      }
      return at;
    }
    for (let off = start; off + length <= end; off += 4) {
      if (this.config.claim(off, length)) return off;
    }
    throw new PciError("PCI_CAP_NO_ROOM", `no room for capability 0x${id.toString(16)} (${length} bytes)`, { id, length });
  }

  capabilities(): readonly CapabilityInfo[] {
    return this.#caps;
  }
  findCapability(id: number): number | undefined {
    return this.#caps.find((c) => !c.extended && c.id === id)?.offset;
  }
  findExtendedCapability(id: number): number | undefined {
    return this.#caps.find((c) => c.extended && c.id === id)?.offset;
  }

  /** Registers a capability object so that others can find it (e.g. the bus finds SR-IOV). */
  attach(obj: object): void {
    this.#attached.push(obj);
  }
  /** The attached capability object of a class, if any. */
  feature<T>(cls: abstract new (...args: never[]) => T): T | undefined {
    for (const o of this.#attached) if (o instanceof cls) return o;
    return undefined;
  }

  // ---------------------------------------------------------------- BARs

  /**
   * Defines BAR `index` (PCI 3.0 §6.2.5.1): the register holds the type bits, its write mask is
   * ~(size − 1), so writing all ones reads back the size mask. A 64-bit BAR takes index and
   * index + 1. A VF has no BARs of its own (they are the PF's SR-IOV VF BARs).
   */
  defineBar(index: number, spec: BarSpec): void {
    const maxIndex = this.headerType === 0 ? 5 : 1;
    if (this.virtualFunction !== undefined) throw new PciError("PCI_BAD_BAR", "a VF's BARs are defined by its PF's SR-IOV capability");
    if (!Number.isInteger(index) || index < 0 || index > maxIndex) throw new PciError("PCI_BAD_BAR", `BAR index ${index} is not 0..${maxIndex}`);
    checkBarSpec(`BAR ${index}`, spec, true);
    const wide = spec.kind === "mem64";
    if (wide && index === maxIndex) throw new PciError("PCI_BAD_BAR", `a 64-bit BAR cannot start at the last slot ${index}`);
    if (this.#slotTaken(index) || (wide && this.#slotTaken(index + 1))) throw new PciError("PCI_BAD_BAR", `BAR ${index} is already defined`);
    this.#bars[index] = { ...spec };
    const reg = PCI_BASE_ADDRESS_0 + index * 4;
    const enc = barEncoding(spec);
    this.config.setU32(reg, enc.low);
    this.config.setWmask(reg, 4, enc.lowMask);
    if (wide) {
      this.config.setU32(reg + 4, 0);
      this.config.setWmask(reg + 4, 4, enc.highMask);
    }
  }

  #slotTaken(i: number): boolean {
    return this.#bars[i] !== undefined || (i > 0 && this.#bars[i - 1]?.kind === "mem64");
  }

  /** An expansion ROM BAR (PCI 3.0 §6.3.1); absent unless asked for. */
  defineRom(size: number): void {
    if (!isPowerOfTwo(size) || size < 2048 || size > 2 ** 24) throw new PciError("PCI_BAD_BAR", `ROM size ${size} is not a power of two in 2 KiB..16 MiB`);
    if (this.#rom !== undefined) throw new PciError("PCI_BAD_BAR", "the ROM BAR is already defined");
    this.#rom = size;
    const reg = this.headerType === 0 ? PCI_ROM_ADDRESS : PCI_ROM_ADDRESS1;
    this.config.setWmask(reg, 4, ((~(size - 1) & 0xffff_f800) | PCI_ROM_ADDRESS_ENABLE) >>> 0);
  }

  /** BAR `index`'s definition (for a VF: its PF's VF BAR). */
  barSpec(index: number): BarSpec | undefined {
    const vf = this.virtualFunction;
    if (vf !== undefined) return vf.parent.vfBarSpec(index);
    return this.#bars[index];
  }
  barSize(index: number): number | undefined {
    return this.barSpec(index)?.size;
  }

  /**
   * Where BAR `index` currently decodes, or undefined when it is undefined, unassigned, or its
   * decoding is off (Command I/O or Memory bit clear, power state not D0, VF not enabled).
   */
  barAddress(index: number): number | undefined {
    const spec = this.barSpec(index);
    if (spec === undefined || this.#power !== 0 || !this.#enabled) return undefined;
    const cmd = this.config.read(PCI_COMMAND, 2);
    if ((cmd & (spec.kind === "io" ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY)) === 0) return undefined;
    const vf = this.virtualFunction;
    if (vf !== undefined) return vf.parent.vfPresent(vf.index) ? vf.parent.vfBarAddress(index, vf.index) : undefined;
    const reg = PCI_BASE_ADDRESS_0 + index * 4;
    const low = this.config.read(reg, 4);
    const high = spec.kind === "mem64" ? this.config.read(reg + 4, 4) : 0;
    return decodeBarAddress(spec.kind, low, high, spec.size);
  }

  /** Maps a register window [offset, offset + length) of BAR `bar` to `handler`. */
  mapBarRegion(bar: number, offset: number, length: number, handler: BarRegionHandler): void {
    const size = this.barSize(bar);
    if (size === undefined) throw new PciError("PCI_BAD_REGION", `BAR ${bar} is not defined`, { bar });
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0 || offset + length > size) {
      throw new PciError("PCI_BAD_REGION", `window ${offset}+${length} leaves BAR ${bar} (${size} bytes)`, { bar, offset, length, size });
    }
    const list = this.#regions[bar] ?? [];
    for (const r of list) {
      if (r.offset < offset + length && offset < r.offset + r.length) {
        throw new PciError("PCI_BAD_REGION", `window ${offset}+${length} overlaps ${r.offset}+${r.length} in BAR ${bar}`, { bar, offset, length });
      }
    }
    list.push({ offset, length, handler });
    list.sort((a, b) => a.offset - b.offset);
  }

  /** A read at `offset` into BAR `bar`: the window that holds it answers; elsewhere reads 0. */
  barRead(bar: number, offset: number, width: AccessWidth): number {
    const r = this.#region(bar, offset, width);
    if (r === undefined) return 0;
    const v = r.handler.read(offset - r.offset, width);
    return width === 4 ? v >>> 0 : v & allOnes(width);
  }

  /** A write at `offset` into BAR `bar`: the window that holds it takes it; elsewhere dropped. */
  barWrite(bar: number, offset: number, width: AccessWidth, value: number): void {
    const r = this.#region(bar, offset, width);
    if (r !== undefined) r.handler.write(offset - r.offset, width, width === 4 ? value >>> 0 : value & allOnes(width));
  }

  #region(bar: number, offset: number, width: number): Region | undefined {
    const list = this.#regions[bar];
    if (list === undefined) return undefined;
    for (const r of list) {
      if (offset >= r.offset && offset + width <= r.offset + r.length) return r;
    }
    return undefined;
  }

  // ---------------------------------------------------------------- interrupts

  /** Where this function's MSI/MSI-X messages go (the bus sets it on attach). */
  setMsiSink(sink: MsiSink | undefined): void {
    this.#msiSink = sink;
  }

  /**
   * Sends one message write if the function may: Bus Master Enable set (PCI 3.0 §6.8: MSI is a
   * memory write, which a function without bus mastering cannot issue) and a sink present.
   * Returns whether it was sent.
   */
  sendMsi(address: number, data: number): boolean {
    if (!this.busMaster || this.#msiSink === undefined) return false;
    this.#msiSink(address, data);
    return true;
  }
}

import type { AccessWidth, PciPlatform } from "../pci/platform.js";
import { ECAM_BASE, ECAM_SIZE } from "./firmware.js";

/**
 * Routes the guest's configuration cycles between v86's own functions (host bridge, ISA
 * bridge, ACPI, ...: conventional PCI, 256-byte config space) and a PciPlatform (the vmm's
 * devices, or any device model). A devfn v86 occupies stays v86's; every other devfn belongs to
 * the platform, whose configRead answers all ones for an absent function, so VFs appear and
 * vanish exactly when the model says so. Pure logic, unit-tested without v86.
 */
export interface NativeBus {
  /** True when v86 has a function at bus 0 / devfn. */
  has(devfn: number): boolean;
  /** A read from v86's 256-byte config space (dword-aligned offset < 0x100). */
  readDword(devfn: number, offset: number): number;
  /** A write into v86's config space through v86's own write path. */
  write(devfn: number, offset: number, width: AccessWidth, value: number): void;
}

function mask(width: AccessWidth): number {
  return width === 4 ? 0xffff_ffff : width === 2 ? 0xffff : 0xff;
}

/** `value` cut to `width` bytes as an unsigned number (JS `&` yields a signed int32). */
function cut(value: number, width: AccessWidth): number {
  return (value & mask(width)) >>> 0;
}

export class ConfigRouter {
  constructor(
    private readonly native: NativeBus,
    private readonly platform: PciPlatform,
  ) {}

  /** Whether bus/devfn is served by the platform rather than by v86. */
  ownsPlatform(bus: number, devfn: number): boolean {
    return bus !== 0 || !this.native.has(devfn);
  }

  /** Bus 0 devfns where both v86 and the platform have a function: the platform's is hidden. */
  shadowedDevfns(): number[] {
    const out: number[] = [];
    for (let devfn = 0; devfn < 256; devfn++) {
      if (this.native.has(devfn) && this.platform.configRead(0, devfn, 0, 2) !== 0xffff) out.push(devfn);
    }
    return out;
  }

  read(bus: number, devfn: number, offset: number, width: AccessWidth): number {
    if (this.ownsPlatform(bus, devfn)) return this.platform.configRead(bus, devfn, offset, width) >>> 0;
    // v86's functions are conventional PCI: no extended space; Linux never probes it for them
    // (pci_cfg_space_size needs a PCIe capability), but answer 0 rather than garbage.
    if (offset >= 0x100) return 0;
    const dword = this.native.readDword(devfn, offset & ~3) >>> 0;
    return cut(dword >>> ((offset & 3) * 8), width);
  }

  write(bus: number, devfn: number, offset: number, width: AccessWidth, value: number): void {
    if (this.ownsPlatform(bus, devfn)) {
      this.platform.configWrite(bus, devfn, offset, width, cut(value, width));
      return;
    }
    if (offset >= 0x100) return;
    this.native.write(devfn, offset, width, cut(value, width));
  }

  /** Decodes an ECAM address (PCIe Base §7.2.2: bus 27:20, device 19:15, function 14:12). */
  static decodeEcam(address: number): { bus: number; devfn: number; offset: number } | undefined {
    const rel = address - ECAM_BASE;
    if (rel < 0 || rel >= ECAM_SIZE) return undefined;
    return { bus: (rel >>> 20) & 0xff, devfn: (rel >>> 12) & 0xff, offset: rel & 0xfff };
  }

  ecamRead(address: number, width: AccessWidth): number {
    const at = ConfigRouter.decodeEcam(address);
    // Accesses must be naturally aligned (PCIe Base §7.2.2.2); others read all ones.
    if (at === undefined || (at.offset & (width - 1)) !== 0) return mask(width);
    return this.read(at.bus, at.devfn, at.offset, width);
  }

  ecamWrite(address: number, width: AccessWidth, value: number): void {
    const at = ConfigRouter.decodeEcam(address);
    if (at === undefined || (at.offset & (width - 1)) !== 0) return;
    this.write(at.bus, at.devfn, at.offset, width, value);
  }

  /**
   * A conf1 access (ports 0xCF8/0xCFC, PCI Local Bus 3.0 §3.2.2.3.2): `address` is the CF8
   * value, `byte` the port offset 0..3 within CFC. Bit 31 off means no configuration cycle.
   */
  static decodeConf1(address: number, byte: number): { bus: number; devfn: number; offset: number } | undefined {
    if ((address & 0x8000_0000) === 0) return undefined;
    return { bus: (address >>> 16) & 0xff, devfn: (address >>> 8) & 0xff, offset: (address & 0xfc) + byte };
  }
}

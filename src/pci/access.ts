import { allOnes } from "./config-space.js";
import { PciError } from "./errors.js";
import type { AccessWidth, PciPlatform } from "./platform.js";

type ConfigCycles = Pick<PciPlatform, "configRead" | "configWrite">;

/**
 * PCI Express Enhanced Configuration Access Mechanism (PCIe Base §7.2.2; ACPI MCFG): a memory
 * window where offset = (bus − startBus) << 20 | devfn << 12 | register. It turns memory accesses
 * into configuration cycles for the hypervisor's MMCONFIG region; an access past the window or
 * across a function's 4 KiB reads all ones and is dropped.
 */
export class EcamWindow {
  readonly startBus: number;
  readonly endBus: number;
  readonly size: number;
  readonly #target: ConfigCycles;

  constructor(target: ConfigCycles, startBus = 0, endBus = 255) {
    if (!Number.isInteger(startBus) || !Number.isInteger(endBus) || startBus < 0 || endBus > 255 || endBus < startBus) {
      throw new PciError("PCI_BAD_ARGUMENT", `ECAM bus range ${startBus}..${endBus} is not within 0..255`);
    }
    this.#target = target;
    this.startBus = startBus;
    this.endBus = endBus;
    this.size = (endBus - startBus + 1) * 0x10_0000;
  }

  #decode(offset: number, width: number): { bus: number; devfn: number; reg: number } | undefined {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + width > this.size) return undefined;
    const reg = offset & 0xfff;
    if (reg + width > 0x1000) return undefined;
    return { bus: this.startBus + Math.floor(offset / 0x10_0000), devfn: (offset >> 12) & 0xff, reg };
  }

  read(offset: number, width: AccessWidth): number {
    const a = this.#decode(offset, width);
    return a === undefined ? allOnes(width) : this.#target.configRead(a.bus, a.devfn, a.reg, width);
  }

  write(offset: number, width: AccessWidth, value: number): void {
    const a = this.#decode(offset, width);
    if (a !== undefined) this.#target.configWrite(a.bus, a.devfn, a.reg, width, value);
  }
}

export const CONF1_ADDRESS_PORT = 0xcf8;
export const CONF1_DATA_PORT = 0xcfc;

/**
 * PCI Configuration Mechanism #1 (PCI 3.0 §3.2.2.3.2): a dword address latch at port 0xCF8 (bit 31
 * enable, bus 23:16, devfn 15:8, register 7:2) and a data window at 0xCFC..0xCFF. It reaches the
 * first 256 bytes of each function only. Non-dword accesses to 0xCF8 are not the latch and are
 * ignored (on a PC they belong to other registers such as 0xCF9).
 */
export class Conf1Ports {
  readonly #target: ConfigCycles;
  #address = 0;

  constructor(target: ConfigCycles) {
    this.#target = target;
  }

  /** Whether a port belongs to this mechanism (0xCF8..0xCFF). */
  claims(port: number): boolean {
    return port >= CONF1_ADDRESS_PORT && port <= CONF1_DATA_PORT + 3;
  }

  read(port: number, width: AccessWidth): number {
    if (port === CONF1_ADDRESS_PORT && width === 4) return this.#address;
    const a = this.#decode(port, width);
    return a === undefined ? allOnes(width) : this.#target.configRead(a.bus, a.devfn, a.reg, width);
  }

  write(port: number, width: AccessWidth, value: number): void {
    if (port === CONF1_ADDRESS_PORT && width === 4) {
      // Bits 30:24 are reserved and bits 1:0 read back 0.
      this.#address = (value & 0x80ff_fffc) >>> 0;
      return;
    }
    const a = this.#decode(port, width);
    if (a !== undefined) this.#target.configWrite(a.bus, a.devfn, a.reg, width, value);
  }

  #decode(port: number, width: number): { bus: number; devfn: number; reg: number } | undefined {
    if (!Number.isInteger(port) || port < CONF1_DATA_PORT || port + width > CONF1_DATA_PORT + 4) return undefined;
    if ((this.#address & 0x8000_0000) === 0) return undefined;
    return { bus: (this.#address >> 16) & 0xff, devfn: (this.#address >> 8) & 0xff, reg: (this.#address & 0xfc) | (port & 3) };
  }
}

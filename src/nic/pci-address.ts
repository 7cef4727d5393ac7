import { NicError } from "./errors.js";

/**
 * A PCI function's host-side identity: segment (domain) and 16-bit routing ID
 * (bus << 8 | device << 3 | function), printed the way Linux names /sys/bus/pci/devices entries
 * ("0000:3b:00.2"). With ARI (PCIe r6.0 §6.13) the 8-bit function number is still printed as
 * device.function, which is what Linux does.
 */
export class PciAddress {
  constructor(
    readonly domain: number,
    readonly rid: number,
  ) {
    if (!Number.isInteger(domain) || domain < 0 || domain > 0xffff || !Number.isInteger(rid) || rid < 0 || rid > 0xffff) {
      throw new NicError("NIC_BAD_ARGUMENT", `PCI address out of range: domain ${domain} rid ${rid}`, { domain, rid });
    }
  }
  get bus(): number {
    return this.rid >>> 8;
  }
  get device(): number {
    return (this.rid >>> 3) & 0x1f;
  }
  get function(): number {
    return this.rid & 7;
  }
  toString(): string {
    const h = (v: number, w: number): string => v.toString(16).padStart(w, "0");
    return `${h(this.domain, 4)}:${h(this.bus, 2)}:${h(this.device, 2)}.${this.function}`;
  }
  toJSON(): string {
    return this.toString();
  }
  /** Parses "DDDD:BB:DD.F" (or "BB:DD.F", domain 0); undefined when the text is not one. */
  static parse(text: string): PciAddress | undefined {
    const m = /^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(text);
    if (m === null) return undefined;
    const dev = parseInt(m[3]!, 16);
    if (dev > 0x1f) return undefined;
    return new PciAddress(m[1] === undefined ? 0 : parseInt(m[1], 16), (parseInt(m[2]!, 16) << 8) | (dev << 3) | parseInt(m[4]!, 10));
  }
}

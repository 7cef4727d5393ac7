import { PciError } from "./errors.js";
import type { PciFunction } from "./function.js";
import { PCI_EXT_CAP_ID_ARI } from "./regs.js";

export const PCI_ARI_CAP = 0x04;
export const PCI_ARI_CTRL = 0x06;

/**
 * Alternative Routing-ID Interpretation capability (PCIe Base §7.8.7): 8 bytes; its presence
 * lets a device use an 8-bit function number. Next Function Number links the functions of the
 * device (0 ends the chain). MFVC and ACS function groups are not implemented, so the control
 * register is read-only zero.
 */
export class AriCapability {
  readonly fn: PciFunction;
  readonly offset: number;

  constructor(fn: PciFunction, opts: { nextFunction?: number; at?: number } = {}) {
    this.fn = fn;
    this.offset = fn.addExtendedCapability(PCI_EXT_CAP_ID_ARI, 1, 8, opts.at);
    this.setNextFunction(opts.nextFunction ?? 0);
    fn.attach(this);
  }

  /** Sets Next Function Number (a power-on value: survives reset). */
  setNextFunction(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > 255) throw new PciError("PCI_BAD_ARGUMENT", `next function number ${n} is not 0..255`);
    this.fn.config.setU16(this.offset + PCI_ARI_CAP, n << 8);
  }

  get nextFunction(): number {
    return this.fn.config.read(this.offset + PCI_ARI_CAP, 2) >> 8;
  }
}

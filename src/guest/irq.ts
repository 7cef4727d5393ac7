/**
 * The guest's interrupt side: an x86-style MSI controller and MSI-X table programming
 * (PCI 3.0 §6.8.2). Every MSI/MSI-X message the platform delivers carries the vector number the
 * guest wrote into the table's data field; the controller dispatches on it.
 */
import type { PciPlatform } from "../pci/platform.js";
import { sysErr } from "./errors.js";
import { PCI_CAP_ID_MSIX, type PciDev } from "./pci.js";

/** The x86 local-APIC MSI address window (Intel SDM vol. 3 §10.11.1), destination CPU 0. */
export const MSI_ADDRESS = 0xfee00000;

export class InterruptController {
  readonly #handlers = new Map<number, () => void>();
  #next = 0x30;
  /** Messages whose data matched no registered vector (a device bug or a stale vector). */
  spurious = 0;
  delivered = 0;
  /** Handlers that failed (a kernel oops in interrupt context); the machine keeps running. */
  handlerErrors = 0;
  lastHandlerError: unknown;

  constructor(platform: PciPlatform) {
    platform.onMsi((address, data) => {
      this.#dispatch(address, data);
    });
  }

  #dispatch(address: number, data: number): void {
    const h = ((address & 0xfff00000) >>> 0) === MSI_ADDRESS ? this.#handlers.get(data & 0xffff) : undefined;
    if (h === undefined) {
      this.spurious++;
      return;
    }
    this.delivered++;
    try {
      h();
    } catch (e) {
      // An interrupt handler's failure must not unwind into the device that raised the message.
      this.handlerErrors++;
      this.lastHandlerError = e;
    }
  }

  allocate(handler: () => void): number {
    const v = this.#next++;
    this.#handlers.set(v, handler);
    return v;
  }

  release(vector: number): void {
    this.#handlers.delete(vector);
  }
}

/** MSI-X of one function: table location and per-entry programming. */
export class MsixTable {
  readonly pos: number;
  readonly size: number;
  readonly #tableAddr: number;
  readonly #vectors: number[] = [];

  constructor(
    readonly dev: PciDev,
    readonly irq: InterruptController,
  ) {
    const pos = dev.caps.get(PCI_CAP_ID_MSIX);
    if (pos === undefined) throw sysErr("EINVAL", `${dev.name}: no MSI-X capability`);
    this.pos = pos;
    this.size = (dev.read16(pos + 2) & 0x7ff) + 1;
    const t = dev.read32(pos + 4);
    const bar = dev.bars[t & 7];
    if (bar === undefined || bar.address === 0) throw sysErr("EINVAL", `${dev.name}: MSI-X table BAR ${t & 7} is not assigned`);
    this.#tableAddr = bar.address + (t & ~7);
  }

  get platform(): PciPlatform {
    return this.dev.platform;
  }

  /** Programs entry `entry` to raise `handler`; returns the entry number. */
  setup(entry: number, handler: () => void): number {
    if (entry >= this.size) throw sysErr("ENOSPC", `${this.dev.name}: MSI-X entry ${entry} beyond table size ${this.size}`);
    const v = this.irq.allocate(handler);
    this.#vectors.push(v);
    const a = this.#tableAddr + entry * 16;
    const p = this.platform;
    p.mmioWrite(a, 4, MSI_ADDRESS);
    p.mmioWrite(a + 4, 4, 0);
    p.mmioWrite(a + 8, 4, v);
    p.mmioWrite(a + 12, 4, 0); // vector control: unmasked
    return entry;
  }

  /** The interrupt numbers this function's entries raise (sysfs msi_irqs). */
  get vectors(): readonly number[] {
    return this.#vectors;
  }

  /** Message Control: MSI-X Enable (bit 15) on, Function Mask (bit 14) off. */
  enable(): void {
    const mc = this.dev.read16(this.pos + 2);
    this.dev.write16(this.pos + 2, (mc | 0x8000) & ~0x4000);
  }

  disable(): void {
    const mc = this.dev.read16(this.pos + 2);
    this.dev.write16(this.pos + 2, mc & ~0x8000);
    for (const v of this.#vectors) this.irq.release(v);
    this.#vectors.length = 0;
  }
}

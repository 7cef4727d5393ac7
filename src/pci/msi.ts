import { PciError } from "./errors.js";
import type { PciEffect, PciFunction } from "./function.js";
import { PCI_CAP_ID_MSI, PCI_COMMAND } from "./regs.js";

export interface MsiOptions {
  /** Multiple Message Capable: 1, 2, 4, 8, 16 or 32 vectors; default 1. */
  readonly vectors?: number;
  /** 64-bit Address Capable; default true. */
  readonly address64?: boolean;
  /** Per-Vector Masking Capable (mask and pending registers); default false. */
  readonly perVectorMask?: boolean;
  readonly at?: number;
}

export const PCI_MSI_FLAGS = 0x02;
export const PCI_MSI_FLAGS_ENABLE = 0x0001;
export const PCI_MSI_FLAGS_QMASK = 0x000e;
export const PCI_MSI_FLAGS_QSIZE = 0x0070;
export const PCI_MSI_FLAGS_64BIT = 0x0080;
export const PCI_MSI_FLAGS_MASKBIT = 0x0100;
export const PCI_MSI_ADDRESS_LO = 0x04;

/** What MsiCapability.notify did. */
export type MsiOutcome = "sent" | "pending" | "disabled";

/**
 * MSI (PCI 3.0 §6.8.1): Message Control (Enable, Multiple Message Capable/Enable, 64-bit, per-vector
 * masking), Message Address (bits 1:0 read-only 0), Message Upper Address, Message Data, and with
 * per-vector masking the Mask Bits (RW) and Pending Bits (RO) registers. Vector v of an enabled
 * group of n sends Message Data with its low log2(n) bits replaced by v (§6.8.1.6). A masked
 * vector, or one that cannot be sent (Bus Master Enable clear), is held pending and sent when
 * that clears.
 */
export class MsiCapability {
  readonly fn: PciFunction;
  readonly offset: number;
  readonly vectors: number;
  readonly address64: boolean;
  readonly perVectorMask: boolean;
  readonly #dataAt: number;
  readonly #maskAt: number;
  #pending = 0;

  constructor(fn: PciFunction, opts: MsiOptions = {}) {
    const n = opts.vectors ?? 1;
    const mmc = Math.log2(n);
    if (!Number.isInteger(mmc) || mmc < 0 || mmc > 5) throw new PciError("PCI_BAD_ARGUMENT", `MSI vectors ${n} is not 1, 2, 4, 8, 16 or 32`);
    this.fn = fn;
    this.vectors = n;
    this.address64 = opts.address64 ?? true;
    this.perVectorMask = opts.perVectorMask === true;
    this.#dataAt = this.address64 ? 0x0c : 0x08;
    this.#maskAt = this.#dataAt + 4;
    // Sizes as pci_regs.h: 10 / 14 bytes without masking, 20 / 24 with it.
    const length = this.perVectorMask ? this.#maskAt + 8 : this.#dataAt + 2;
    const o = (this.offset = fn.addCapability(PCI_CAP_ID_MSI, length, opts.at));
    const c = fn.config;
    c.setU16(o + PCI_MSI_FLAGS, (mmc << 1) | (this.address64 ? PCI_MSI_FLAGS_64BIT : 0) | (this.perVectorMask ? PCI_MSI_FLAGS_MASKBIT : 0));
    c.setWmask(o + PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    c.setWmask(o + PCI_MSI_ADDRESS_LO, 4, 0xffff_fffc);
    if (this.address64) c.setWmask(o + 0x08, 4, 0xffff_ffff);
    c.setWmask(o + this.#dataAt, 2, 0xffff);
    if (this.perVectorMask) c.setWmask(o + this.#maskAt, 4, n === 32 ? 0xffff_ffff : (1 << n) - 1);
    fn.onConfigWrite(o, length, () => this.#afterWrite());
    fn.onConfigWrite(PCI_COMMAND, 2, () => this.#flush());
    fn.onReset(() => {
      this.#pending = 0;
      return undefined;
    });
    fn.attach(this);
  }

  get #control(): number {
    return this.fn.config.read(this.offset + PCI_MSI_FLAGS, 2);
  }
  get enabled(): boolean {
    return (this.#control & PCI_MSI_FLAGS_ENABLE) !== 0;
  }
  /** Vectors software enabled (Multiple Message Enable), never more than capable. */
  get enabledVectors(): number {
    return Math.min(this.vectors, 1 << ((this.#control & PCI_MSI_FLAGS_QSIZE) >> 4));
  }
  get address(): number {
    const c = this.fn.config;
    const lo = c.read(this.offset + PCI_MSI_ADDRESS_LO, 4);
    return this.address64 ? c.read(this.offset + 0x08, 4) * 0x1_0000_0000 + lo : lo;
  }
  get data(): number {
    return this.fn.config.read(this.offset + this.#dataAt, 2);
  }
  masked(v: number): boolean {
    this.#check(v);
    return this.perVectorMask && ((this.fn.config.read(this.offset + this.#maskAt, 4) >>> v) & 1) !== 0;
  }
  pending(v: number): boolean {
    this.#check(v);
    return ((this.#pending >>> v) & 1) !== 0;
  }

  /** The device raises vector v (0-based). Vectors beyond the enabled group are not sent. */
  notify(v: number): MsiOutcome {
    this.#check(v);
    if (!this.enabled || v >= this.enabledVectors) return "disabled";
    if (this.masked(v) || !this.#send(v)) {
      this.#setPending(v, true);
      return "pending";
    }
    return "sent";
  }

  #send(v: number): boolean {
    const n = this.enabledVectors;
    return this.fn.sendMsi(this.address, ((this.data & ~(n - 1)) | v) & 0xffff);
  }

  #setPending(v: number, on: boolean): void {
    this.#pending = (on ? this.#pending | (1 << v) : this.#pending & ~(1 << v)) >>> 0;
    if (this.perVectorMask) this.fn.config.poke(this.offset + this.#maskAt + 4, 4, this.#pending);
  }

  #afterWrite(): readonly PciEffect[] | undefined {
    // Multiple Message Enable above Multiple Message Capable is undefined (§6.8.1.3): clamp it.
    const c = this.fn.config;
    const ctrl = this.#control;
    const mme = (ctrl & PCI_MSI_FLAGS_QSIZE) >> 4;
    const mmc = (ctrl & PCI_MSI_FLAGS_QMASK) >> 1;
    if (mme > mmc) c.poke(this.offset + PCI_MSI_FLAGS, 2, (ctrl & ~PCI_MSI_FLAGS_QSIZE) | (mmc << 4));
    return this.#flush();
  }

  #flush(): undefined {
    if (this.#pending === 0 || !this.enabled || !this.fn.busMaster) return undefined;
    for (let v = 0; v < this.vectors; v++) {
      if (this.pending(v) && v < this.enabledVectors && !this.masked(v) && this.#send(v)) this.#setPending(v, false);
    }
    return undefined;
  }

  #check(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v >= this.vectors) throw new PciError("PCI_BAD_ARGUMENT", `MSI vector ${v} is not 0..${this.vectors - 1}`);
  }
}

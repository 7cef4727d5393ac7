import { PciError } from "./errors.js";
import type { PciEffect, PciFunction } from "./function.js";
import type { AccessWidth } from "./platform.js";
import { PCI_CAP_ID_MSIX, PCI_COMMAND } from "./regs.js";

export interface MsixOptions {
  /** Table Size: 1..2048 vectors. */
  readonly vectors: number;
  readonly tableBar: number;
  /** Byte offset of the table in its BAR; 8-byte aligned. */
  readonly tableOffset: number;
  readonly pbaBar: number;
  readonly pbaOffset: number;
  readonly at?: number;
}

export const PCI_MSIX_FLAGS = 0x02;
export const PCI_MSIX_TABLE = 0x04;
export const PCI_MSIX_PBA = 0x08;
export const PCI_MSIX_FLAGS_MASKALL = 0x4000;
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
export const PCI_MSIX_ENTRY_SIZE = 16;
export const PCI_MSIX_ENTRY_VECTOR_CTRL = 12;
export const PCI_MSIX_ENTRY_CTRL_MASKBIT = 1;

/** What notify() did with a vector's message. */
export type MsixOutcome = "sent" | "pending" | "disabled";

function readLe(b: Uint8Array, off: number, width: number): number {
  let v = 0;
  for (let i = width - 1; i >= 0; i--) v = (v * 256) + (b[off + i] ?? 0);
  return v;
}

/**
 * MSI-X (PCI 3.0 §6.8.2): a 12-byte capability whose Message Control has MSI-X Enable and
 * Function Mask; the table (16 bytes per vector: address, upper address, data, vector control)
 * and the Pending Bit Array live in BARs and are served as BAR regions. A message that cannot be
 * sent (function or vector masked, or Bus Master Enable clear) sets its pending bit; clearing the
 * mask sends it and clears the bit (§6.8.2.9).
 */
export class MsixCapability {
  readonly fn: PciFunction;
  readonly offset: number;
  readonly vectors: number;
  readonly #table: Uint8Array;
  readonly #pba: Uint8Array;

  constructor(fn: PciFunction, opts: MsixOptions) {
    const n = opts.vectors;
    if (!Number.isInteger(n) || n < 1 || n > 2048) throw new PciError("PCI_BAD_ARGUMENT", `MSI-X table size ${n} is not 1..2048`);
    for (const [name, bar, off] of [["table", opts.tableBar, opts.tableOffset], ["PBA", opts.pbaBar, opts.pbaOffset]] as const) {
      if (!Number.isInteger(bar) || bar < 0 || bar > 5) throw new PciError("PCI_BAD_ARGUMENT", `MSI-X ${name} BIR ${bar} is not 0..5`);
      if (!Number.isInteger(off) || off < 0 || off % 8 !== 0 || off > 0xffff_fff8) {
        throw new PciError("PCI_BAD_ARGUMENT", `MSI-X ${name} offset ${off} is not 8-byte aligned`);
      }
      const spec = fn.barSpec(bar);
      if (spec === undefined || spec.kind === "io") throw new PciError("PCI_BAD_REGION", `MSI-X ${name} needs memory BAR ${bar}`);
    }
    this.fn = fn;
    this.vectors = n;
    this.#table = new Uint8Array(n * PCI_MSIX_ENTRY_SIZE);
    this.#pba = new Uint8Array(Math.ceil(n / 64) * 8);
    // Check both windows before mapping either, so that a bad layout leaves the function untouched.
    const tableEnd = opts.tableOffset + this.#table.length, pbaEnd = opts.pbaOffset + this.#pba.length;
    if (tableEnd > (fn.barSize(opts.tableBar) ?? 0) || pbaEnd > (fn.barSize(opts.pbaBar) ?? 0)) {
      throw new PciError("PCI_BAD_REGION", "MSI-X table or PBA leaves its BAR");
    }
    if (opts.tableBar === opts.pbaBar && opts.tableOffset < pbaEnd && opts.pbaOffset < tableEnd) {
      throw new PciError("PCI_BAD_REGION", "MSI-X table and PBA overlap");
    }
    fn.mapBarRegion(opts.tableBar, opts.tableOffset, this.#table.length, {
      read: (off, width) => this.#tableRead(off, width),
      write: (off, width, value) => this.#tableWrite(off, width, value),
    });
    fn.mapBarRegion(opts.pbaBar, opts.pbaOffset, this.#pba.length, {
      read: (off, width) => readLe(this.#pba, off, width),
      write: () => undefined, // the PBA is read-only (§6.8.2.10)
    });
    const o = (this.offset = fn.addCapability(PCI_CAP_ID_MSIX, 12, opts.at));
    const c = fn.config;
    c.setU16(o + PCI_MSIX_FLAGS, n - 1);
    c.setWmask(o + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
    c.setU32(o + PCI_MSIX_TABLE, (opts.tableOffset | opts.tableBar) >>> 0);
    c.setU32(o + PCI_MSIX_PBA, (opts.pbaOffset | opts.pbaBar) >>> 0);
    this.#resetTable();
    // Unmasking through Message Control, or enabling bus mastering, may release pending messages.
    fn.onConfigWrite(o + PCI_MSIX_FLAGS, 2, () => this.#flush());
    fn.onConfigWrite(PCI_COMMAND, 2, () => this.#flush());
    fn.onReset(() => {
      this.#resetTable();
      return undefined;
    });
    fn.attach(this);
  }

  #resetTable(): void {
    // Reset state: address and data 0, every vector masked, nothing pending (§6.8.2.9).
    this.#table.fill(0);
    for (let v = 0; v < this.vectors; v++) this.#table[v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
    this.#pba.fill(0);
  }

  get enabled(): boolean {
    return (this.fn.config.read(this.offset + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_ENABLE) !== 0;
  }
  get functionMasked(): boolean {
    return (this.fn.config.read(this.offset + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_MASKALL) !== 0;
  }
  vectorMasked(v: number): boolean {
    this.#checkVector(v);
    return ((this.#table[v * PCI_MSIX_ENTRY_SIZE + PCI_MSIX_ENTRY_VECTOR_CTRL] ?? 0) & PCI_MSIX_ENTRY_CTRL_MASKBIT) !== 0;
  }
  pending(v: number): boolean {
    this.#checkVector(v);
    return (((this.#pba[v >> 3] ?? 0) >> (v & 7)) & 1) !== 0;
  }
  /** The message of vector v as the guest programmed it. */
  entry(v: number): { address: number; data: number; masked: boolean } {
    this.#checkVector(v);
    const b = v * PCI_MSIX_ENTRY_SIZE;
    return { address: readLe(this.#table, b, 8), data: readLe(this.#table, b + 8, 4), masked: this.vectorMasked(v) };
  }

  /**
   * The device raises vector v: sent through the function's MSI sink when MSI-X is enabled and
   * nothing masks it; otherwise remembered in the PBA. With MSI-X disabled the event is dropped
   * (the function would use INTx, which vpf does not model).
   */
  notify(v: number): MsixOutcome {
    this.#checkVector(v);
    if (!this.enabled) return "disabled";
    if (this.functionMasked || this.vectorMasked(v) || !this.#send(v)) {
      this.#setPending(v, true);
      return "pending";
    }
    return "sent";
  }

  #send(v: number): boolean {
    const e = this.entry(v);
    return this.fn.sendMsi(e.address, e.data);
  }

  #setPending(v: number, on: boolean): void {
    const i = v >> 3;
    const bit = 1 << (v & 7);
    this.#pba[i] = on ? (this.#pba[i] ?? 0) | bit : (this.#pba[i] ?? 0) & ~bit;
  }

  #flush(): readonly PciEffect[] | undefined {
    if (!this.enabled || this.functionMasked || !this.fn.busMaster) return undefined;
    for (let v = 0; v < this.vectors; v++) {
      if (this.pending(v) && !this.vectorMasked(v) && this.#send(v)) this.#setPending(v, false);
    }
    return undefined;
  }

  #checkVector(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v >= this.vectors) throw new PciError("PCI_BAD_ARGUMENT", `MSI-X vector ${v} is not 0..${this.vectors - 1}`);
  }

  #tableRead(off: number, width: AccessWidth): number {
    return readLe(this.#table, off, width);
  }

  #tableWrite(off: number, width: AccessWidth, value: number): void {
    let v = value >>> 0;
    const touched = new Set<number>();
    for (let i = 0; i < width; i++, v >>>= 8) {
      const o = off + i;
      const field = o % PCI_MSIX_ENTRY_SIZE;
      // Vector Control: only Mask Bit is writable; bits 31:1 are reserved (§6.8.2.9).
      if (field === PCI_MSIX_ENTRY_VECTOR_CTRL) {
        this.#table[o] = ((this.#table[o] ?? 0) & ~1) | (v & 1);
        touched.add(Math.floor(o / PCI_MSIX_ENTRY_SIZE));
      } else if (field < PCI_MSIX_ENTRY_VECTOR_CTRL) {
        this.#table[o] = v & 0xff;
      }
    }
    for (const vec of touched) {
      if (this.enabled && !this.functionMasked && !this.vectorMasked(vec) && this.pending(vec) && this.#send(vec)) {
        this.#setPending(vec, false);
      }
    }
  }
}

/**
 * The register-level boundary between a guest and the machine it runs on (DESIGN.md §3.1: the
 * guest sees only registers). A guest kernel — the model guest or the v86 harness for a real
 * Linux — reaches devices only through this interface: configuration cycles addressed by
 * bus/devfn (what ECAM or port 0xCF8/0xCFC deliver), memory-mapped I/O at physical addresses,
 * and MSI messages delivered as (address, data) pairs. The hypervisor implements it.
 *
 * Guest-physical addresses are JavaScript numbers (safe integers, < 2^53) throughout vpf: fast,
 * and wide enough for any machine we emulate; a 64-bit register value beyond that is out of range.
 */
export type AccessWidth = 1 | 2 | 4;

export interface PciPlatform {
  /** A configuration read; an absent or disabled function reads all ones of the given width. */
  configRead(bus: number, devfn: number, offset: number, width: AccessWidth): number;
  /** A configuration write; writes to an absent or disabled function are dropped. */
  configWrite(bus: number, devfn: number, offset: number, width: AccessWidth, value: number): void;
  /** A memory read at a guest-physical address; unclaimed addresses read all ones. */
  mmioRead(address: number, width: AccessWidth): number;
  /** A memory write at a guest-physical address; unclaimed addresses drop the write. */
  mmioWrite(address: number, width: AccessWidth, value: number): void;
  /** Registers the guest's interrupt controller: every MSI/MSI-X message lands here. */
  onMsi(handler: (address: number, data: number) => void): void;
  /** The guest-physical window the guest may assign memory BARs from (firmware's job on x86). */
  readonly mmioWindow: { readonly base: number; readonly size: number };
}

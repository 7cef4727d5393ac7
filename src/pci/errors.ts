import { VpfError } from "../base/index.js";

/**
 * Stable codes for mistakes made while building a PCI topology (device-side code: the vmm, a
 * device model). Guest register accesses never throw: they are masked, dropped or read all ones
 * exactly as the hardware rules say (docs/pci.md lists every code with its meaning).
 */
export type PciErrorCode =
  /** An argument is out of its range (offset, width, ID, size not a power of two, vector). */
  | "PCI_BAD_ARGUMENT"
  /** A capability does not fit in the remaining configuration space or overlaps another. */
  | "PCI_CAP_NO_ROOM"
  /** An extended capability was asked of a conventional (256-byte) function. */
  | "PCI_NOT_EXPRESS"
  /** A BAR definition is impossible (index taken, 64-bit BAR in slot 5, wrong size, VF BAR). */
  | "PCI_BAD_BAR"
  /** A BAR register window overlaps another window or leaves the BAR. */
  | "PCI_BAD_REGION"
  /** The SR-IOV parameters break a rule of PCIe SR-IOV §3.3 or Linux's sriov_init. */
  | "PCI_BAD_SRIOV"
  /** A bus address is already taken by another function, or the function is already attached. */
  | "PCI_ADDRESS_IN_USE"
  /** A function number above 7 (or a VF beyond the PF's device) without an ARI capability. */
  | "PCI_NEEDS_ARI"
  /** A VF routing ID would leave the PF's bus. */
  | "PCI_VF_OFF_BUS"
  /** The function is not attached to this bus. */
  | "PCI_NOT_ATTACHED";

export class PciError extends VpfError {
  declare readonly code: PciErrorCode;
  constructor(code: PciErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details === undefined ? undefined : { details });
  }
}

import { VpfError } from "../base/index.js";

/**
 * Stable codes for misuse of the NIC model by the software that drives it (the host's PF
 * driver, the vmm, tests). Guest-originated input never produces these: bad rings and bad frames
 * are counted and dropped, or put the virtio device into DEVICE_NEEDS_RESET. Linux-visible
 * refusals (EINVAL, EBUSY, ...) are the host facade's job (src/host), which validates first.
 */
export type NicErrorCode =
  /** A NicOptions value is out of range (ports not 1 or 2, TotalVFs outside 1..255, bad MAC). */
  | "NIC_BAD_CONFIG"
  /** An argument to a NIC operation is out of range (VF index, VLAN ID, rate, queue index). */
  | "NIC_BAD_ARGUMENT"
  /** The operation needs a state the function is not in (VFs already enabled, engine not started). */
  | "NIC_BAD_STATE";

export class NicError extends VpfError {
  declare readonly code: NicErrorCode;
  constructor(code: NicErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details === undefined ? undefined : { details });
  }
}

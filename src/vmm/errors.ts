import { VpfError } from "../base/index.js";

/**
 * Stable codes for the hypervisor. These are thrown to the host-side caller (whoever builds or
 * operates VMs: the world, the CLI, tests); a guest never sees an exception — its register
 * writes are answered the way docs/vmm.md describes, and its admin commands get a status.
 * docs/vmm.md lists every code with its meaning.
 */
export type VmmErrorCode =
  /** An argument to a vmm API is out of range or inconsistent (quota, slot, memory size). */
  | "VMM_BAD_ARGUMENT"
  /** A pool has fewer free backends than an operation needs. */
  | "VMM_POOL_EXHAUSTED"
  /** A VM would exceed its per-VM quota of pool backends. */
  | "VMM_QUOTA_EXCEEDED"
  /** A backend refused to bind (attach) to a vVF; everything done so far was rolled back. */
  | "VMM_BACKEND_FAILED"
  /** A backend was returned to a pool that does not hold it, or by a VM that does not hold it. */
  | "VMM_NOT_HELD"
  /** An operation needs a running VM (device added, VM started or stopped twice). */
  | "VMM_BAD_STATE"
  /** No free root port / slot, or a name already in use in this VM. */
  | "VMM_TOPOLOGY";

export class VmmError extends VpfError {
  declare readonly code: VmmErrorCode;
  constructor(code: VmmErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(code, message, options);
  }
}

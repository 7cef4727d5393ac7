import { VpfError } from "../../base/index.js";

/**
 * CNI error codes (CNI spec 1.0/1.1 "Error"; 0-99 are the spec's, 100+ are vpf-sriov's). Each
 * has a stable string code too, documented in docs/k8s.md; the error JSON on stdout carries the
 * number as `code`, the text as `msg` and structured `details`.
 */
export const CNI_CODES = {
  CNI_INCOMPATIBLE_VERSION: 1,
  CNI_UNSUPPORTED_FIELD: 2,
  CNI_UNKNOWN_CONTAINER: 3,
  CNI_INVALID_ENV: 4,
  CNI_IO_FAILURE: 5,
  CNI_DECODE_FAILURE: 6,
  CNI_INVALID_CONFIG: 7,
  CNI_INVALID_NETNS: 8,
  CNI_TRY_AGAIN_LATER: 11,
  CNI_NOT_AVAILABLE: 50,
  VPF_VF_BUSY: 100,
  VPF_NOT_A_VF: 101,
  VPF_KERNEL_REFUSED: 102,
  VPF_IPAM_FAILED: 103,
  VPF_CHECK_FAILED: 104,
  CNI_INTERNAL: 999,
} as const;
export type CniErrorCode = keyof typeof CNI_CODES;

export class CniError extends VpfError {
  declare readonly code: CniErrorCode;
  /** The number that goes into the error JSON's `code`. */
  readonly cniCode: number;
  constructor(code: CniErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown>; cniCode?: number }) {
    super(code, message, options);
    this.cniCode = options?.cniCode ?? CNI_CODES[code];
  }
}

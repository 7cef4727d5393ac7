import { VpfError } from "../base/index.js";

/**
 * Stable codes for what the Kubernetes-facing programs refuse. Kernel-side refusals that travel
 * back from the guest (sysfs, rtnetlink) keep their errno name as code (KernelError); everything
 * listed here is documented in docs/k8s.md.
 */
export type K8sErrorCode =
  /** A device-plugin or CNI configuration is not valid JSON or breaks a rule of its schema. */
  | "K8S_BAD_CONFIG"
  /** A PCI address is not in the domain:bus:device.function form (0000:00:03.1). */
  | "K8S_BAD_PCI_ADDRESS"
  /** The PCI function is not a VF, or its PF / VF index / netdev cannot be found in sysfs. */
  | "K8S_NOT_A_VF"
  /** The guest endpoint cannot be reached, or it answered something that is not the protocol. */
  | "K8S_ENDPOINT"
  /** A guest endpoint frame is malformed (length, JSON, unknown op, bad field). */
  | "K8S_PROTOCOL"
  /** An rtnetlink reply is malformed or does not hold what the request asked for. */
  | "K8S_NETLINK"
  /** The VF is already given to a live pod namespace. */
  | "K8S_VF_BUSY"
  /** The kubelet refused a registration, or a device-plugin request names an unknown device. */
  | "K8S_DEVICE_PLUGIN";

export class K8sError extends VpfError {
  declare readonly code: K8sErrorCode;
  constructor(code: K8sErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(code, message, options);
  }
}

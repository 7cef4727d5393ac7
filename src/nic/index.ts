export { NicError } from "./errors.js";
export type { NicErrorCode } from "./errors.js";
export { PciAddress } from "./pci-address.js";
export { TokenBucket } from "./shaper.js";
export { PortCounters, EswitchPort, vstDomain } from "./port.js";
export type { PortKind, TapDirection, FrameTap, PortStats, VstTag } from "./port.js";
export { Eswitch, EswitchCounters } from "./eswitch.js";
export { Uplink, connectUplinks } from "./uplink.js";
export type { WireReceiver } from "./uplink.js";
export { PhysicalFunction } from "./pf.js";
export type { FrameHandler } from "./pf.js";
export { VirtualFunction, VfLinkState, ETH_P_8021Q, ETH_P_8021AD, VF_SEND_QUEUE_LIMIT, VF_UC_LIST_MAX } from "./vf.js";
export type { VfReceiver, VfTxSource } from "./vf.js";
export { Nic, NicPort, DEFAULT_TOTAL_VFS } from "./nic.js";
export type { NicOptions } from "./nic.js";
export {
  VdpaNetEngine,
  VDPA_NET_FEATURES,
  FEATURE_NAMES,
  featureNames,
  NET_HDR_LEN,
  MAX_VQ_SIZE,
  MAX_VQ_PAIRS,
  VDPA_MTU,
  STATUS_ACKNOWLEDGE,
  STATUS_DRIVER,
  STATUS_DRIVER_OK,
  STATUS_FEATURES_OK,
  STATUS_NEEDS_RESET,
  STATUS_FAILED,
  F_MTU,
  F_MAC,
  F_STATUS,
  F_CTRL_VQ,
  F_CTRL_RX,
  F_MQ,
  F_CTRL_MAC_ADDR,
  F_RING_INDIRECT_DESC,
  F_RING_EVENT_IDX,
  F_VERSION_1,
  F_ACCESS_PLATFORM,
} from "./vdpa.js";
export type { VringAddress, VdpaEngineOptions } from "./vdpa.js";
export { PcapTap } from "./tap.js";
export { TxArbiter } from "./arbiter.js";
export type { ArbitratedSender } from "./arbiter.js";

export {
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_AVAIL_F_NO_INTERRUPT,
  VIRTQ_USED_F_NO_NOTIFY,
  DESC_SIZE,
  USED_ELEM_SIZE,
  MAX_QUEUE_SIZE,
  DESC_ALIGN,
  AVAIL_ALIGN,
  USED_ALIGN,
  VirtqueueError,
  descTableBytes,
  availRingBytes,
  usedRingBytes,
  needEvent,
  checkRingConfig,
} from "./ring.js";
export type { SplitRingConfig, Segment } from "./ring.js";
export { SplitQueueDevice, MAX_INDIRECT } from "./device-queue.js";
export type { DescChain, QueueBase, DeviceQueueStats } from "./device-queue.js";
export { SplitQueueDriver } from "./driver-queue.js";
export type { UsedBuffer, AddOptions } from "./driver-queue.js";
export * from "./constants.js";
export type { VirtioDevice, ActivateContext, TransportHooks } from "./device.js";
export { AdminCommandRegistry, AdminCommandError, encodeOpcodeBitmap, decodeOpcodeBitmap } from "./admin.js";
export type { AdminCommand, AdminResponse, AdminCommandHandler, AdminGroup, AdminStats } from "./admin.js";
export {
  VirtioPciTransport,
  VirtioTransportError,
  VIRTIO_PCI_BAR_SIZE,
  VIRTIO_PCI_COMMON_OFFSET,
  VIRTIO_PCI_ISR_OFFSET,
  VIRTIO_PCI_DEVICE_OFFSET,
  VIRTIO_PCI_DEVICE_MAX,
  VIRTIO_PCI_NOTIFY_OFFSET,
  VIRTIO_PCI_NOTIFY_LENGTH,
  VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER,
  VIRTIO_PCI_MSIX_TABLE_OFFSET,
  VIRTIO_PCI_MSIX_PBA_OFFSET,
  VIRTIO_PCI_MAX_VECTORS,
  VIRTIO_PCI_CAP_BAR,
  VIRTIO_PCI_CAP_OFFSET,
  VIRTIO_PCI_CAP_LENGTH,
  VIRTIO_PCI_CFG_DATA,
  VIRTIO_PCI_CFG_CAP_SIZE,
} from "./pci-transport.js";
export type { QueueInfo, TransportEvent, TransportStats, VirtioPciTransportOptions } from "./pci-transport.js";
export { VirtioNet, VirtioNetError, LoopbackBackend, backendPair } from "./net.js";
export type { NetBackend, RxOutcome, NetControlRequest, VirtioNetOptions, VirtioNetStats } from "./net.js";
export {
  createVirtioNetPci,
  attachVirtioNet,
  VIRTIO_NET_PCI_DEVICE_ID,
  VIRTIO_NET_PCI_CLASS,
  VIRTIO_PCI_SUBSYSTEM_ID,
  VIRTIO_PCI_DEFAULT_BAR,
  VIRTIO_PCI_BAR_SPEC,
} from "./net-pci.js";
export type { VirtioNetPci, VirtioNetPciOptions } from "./net-pci.js";
export { VirtioPciDriver, VirtioDriverError } from "./pci-driver.js";

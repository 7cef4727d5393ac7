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
export { SplitQueueDevice } from "./device-queue.js";
export type { DescChain, QueueBase, DeviceQueueStats } from "./device-queue.js";
export { SplitQueueDriver } from "./driver-queue.js";
export type { UsedBuffer, AddOptions } from "./driver-queue.js";

/**
 * Split virtqueue layout and shared definitions (virtio 1.3 §2.7, "Split Virtqueues"; the byte
 * layouts match Linux include/uapi/linux/virtio_ring.h).
 *
 *   descriptor table  16 bytes per entry, 16-byte aligned:  le64 addr, le32 len, le16 flags, le16 next
 *   driver area       2-byte aligned:  le16 flags, le16 idx, le16 ring[size], le16 used_event
 *   device area       4-byte aligned:  le16 flags, le16 idx, {le32 id, le32 len} ring[size], le16 avail_event
 *
 * used_event / avail_event exist in memory always but mean something only with
 * VIRTIO_RING_F_EVENT_IDX (§2.7.7, §2.7.10).
 */
import { VpfError } from "../base/index.js";

/** This descriptor continues via the next field. */
export const VIRTQ_DESC_F_NEXT = 1;
/** The buffer is device write-only (otherwise device read-only). */
export const VIRTQ_DESC_F_WRITE = 2;
/** The buffer holds a table of indirect descriptors (§2.7.5.3). */
export const VIRTQ_DESC_F_INDIRECT = 4;
/** Driver area flag: the driver does not want interrupts (without EVENT_IDX). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** Device area flag: the device does not want notifications (without EVENT_IDX). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;

export const DESC_SIZE = 16;
export const USED_ELEM_SIZE = 8;
/** §2.7: "Queue Size ... maximum Queue Size value is 32768". */
export const MAX_QUEUE_SIZE = 32768;
export const DESC_ALIGN = 16;
export const AVAIL_ALIGN = 2;
export const USED_ALIGN = 4;

/** Where a split ring lives in guest memory (what VHOST_SET_VRING_NUM/ADDR carry). */
export interface SplitRingConfig {
  /** Number of descriptors: a power of two, 1..32768. */
  readonly size: number;
  readonly descAddr: number;
  /** Driver area (available ring). */
  readonly availAddr: number;
  /** Device area (used ring). */
  readonly usedAddr: number;
  /** VIRTIO_RING_F_EVENT_IDX negotiated. */
  readonly eventIdx: boolean;
  /** VIRTIO_RING_F_INDIRECT_DESC negotiated; when false an indirect descriptor is a violation. */
  readonly indirect?: boolean;
}

export function descTableBytes(size: number): number {
  return DESC_SIZE * size;
}
export function availRingBytes(size: number): number {
  return 6 + 2 * size;
}
export function usedRingBytes(size: number): number {
  return 6 + USED_ELEM_SIZE * size;
}

/** A buffer segment in guest memory. */
export interface Segment {
  readonly addr: number;
  readonly len: number;
}

/**
 * A virtqueue violation or misuse. Device code records violations on the queue (counted per code)
 * and reports them to the guest as DEVICE_NEEDS_RESET; they never escape the emulator.
 */
export class VirtqueueError extends VpfError {}

/**
 * vring_need_event (§2.7.10): true when new_idx has moved past event_idx since old, all modulo
 * 2^16 — i.e. the other side asked to be told once the index passes event_idx.
 */
export function needEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}

/** Checks a ring configuration against §2.7 alignment and size rules; undefined when valid. */
export function checkRingConfig(config: SplitRingConfig, contains?: (addr: number, len: number) => boolean): VirtqueueError | undefined {
  const { size, descAddr, availAddr, usedAddr } = config;
  if (!Number.isInteger(size) || size < 1 || size > MAX_QUEUE_SIZE || (size & (size - 1)) !== 0) {
    return new VirtqueueError("VQ_BAD_SIZE", `queue size ${size} is not a power of two in 1..${MAX_QUEUE_SIZE}`, { details: { size } });
  }
  const areas: [string, number, number, number][] = [
    ["descriptor table", descAddr, descTableBytes(size), DESC_ALIGN],
    ["driver area", availAddr, availRingBytes(size), AVAIL_ALIGN],
    ["device area", usedAddr, usedRingBytes(size), USED_ALIGN],
  ];
  for (const [name, addr, len, align] of areas) {
    if (!Number.isSafeInteger(addr) || addr < 0 || addr % align !== 0) {
      return new VirtqueueError("VQ_BAD_ALIGNMENT", `${name} address ${addr} is not ${align}-byte aligned`, { details: { area: name, addr, align } });
    }
    if (contains !== undefined && !contains(addr, len)) {
      return new VirtqueueError("VQ_RING_OUT_OF_RANGE", `${name} 0x${addr.toString(16)}+${len} is outside guest memory`, {
        details: { area: name, addr, len },
      });
    }
  }
  return undefined;
}

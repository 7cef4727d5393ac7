import { KernelError } from "../base/index.js";
import type { GuestMemory } from "../memory/index.js";
import type { VdpaNetEngine, VringAddress } from "../nic/index.js";
import { MAX_VQ_SIZE, STATUS_FEATURES_OK } from "../nic/index.js";

/** VHOST_VDPA_GET_DEVICE_ID answer for a network device (virtio_ids.h VIRTIO_ID_NET). */
export const VIRTIO_ID_NET = 1;

/**
 * What a hypervisor holds instead of an open /dev/vhost-vdpa-N: the vhost-vdpa ioctl surface
 * (drivers/vhost/vdpa.c) over one vDPA device. Errors are the ones the kernel returns: a queue
 * index past the device's queues is ENOBUFS (vhost_vdpa_vring_ioctl); features after
 * FEATURES_OK are EBUSY and feature bits the device does not offer EINVAL
 * (vhost_vdpa_set_features); a status write that clears bits without resetting is EINVAL
 * (vhost_vdpa_set_status); a ring size that is not a power of two up to the device's maximum
 * is EINVAL; anything on a closed handle is ENODEV (the kernel's EBADF, which base's errno
 * table lacks). While a handle is open its device cannot be deleted; closing resets the
 * device, as the release of the file does.
 */
export class VhostVdpaHandle {
  #closed = false;

  constructor(
    readonly deviceName: string,
    /** The character device this handle stands for. */
    readonly path: string,
    private readonly engine: VdpaNetEngine,
    private readonly onClose: () => void,
  ) {}

  get closed(): boolean {
    return this.#closed;
  }

  #live(): VdpaNetEngine {
    if (this.#closed) throw new KernelError("ENODEV", `${this.path} is closed`);
    return this.engine;
  }

  #queue(q: number): VdpaNetEngine {
    const e = this.#live();
    if (!Number.isInteger(q) || q < 0 || q >= e.numQueues) throw new KernelError("ENOBUFS", `queue ${q} outside 0..${e.numQueues - 1}`, { details: { queue: q } });
    return e;
  }

  /** VHOST_VDPA_GET_DEVICE_ID */
  getDeviceId(): number {
    this.#live();
    return VIRTIO_ID_NET;
  }

  /** VHOST_GET_FEATURES */
  getFeatures(): bigint {
    return this.#live().deviceFeatures;
  }

  /** VHOST_SET_FEATURES */
  setFeatures(features: bigint): void {
    const e = this.#live();
    if ((e.status & STATUS_FEATURES_OK) !== 0) throw new KernelError("EBUSY", "features are fixed once FEATURES_OK is set");
    // vhost_vdpa_set_features answers EINVAL whenever the device refuses the set.
    if ((features & ~e.deviceFeatures) !== 0n) throw new KernelError("EINVAL", `feature bits 0x${(features & ~e.deviceFeatures).toString(16)} are not offered`);
    e.setFeatures(features);
  }

  /** VHOST_VDPA_GET_STATUS */
  getStatus(): number {
    return this.#live().status;
  }

  /** VHOST_VDPA_SET_STATUS */
  setStatus(status: number): void {
    const e = this.#live();
    if (!Number.isInteger(status) || status < 0 || status > 0xff) throw new KernelError("EINVAL", `status ${status} is not a byte`);
    // "A driver MUST NOT clear a device status bit" (§2.1.2); only a write of 0 resets.
    if (status !== 0 && (e.status & ~status & 0xbf) !== 0) throw new KernelError("EINVAL", "status bits may only be cleared by a reset");
    e.setStatus(status);
  }

  /** VHOST_VDPA_GET_VRING_NUM: the largest queue size the device takes. */
  getVringNum(): number {
    this.#live();
    return MAX_VQ_SIZE;
  }

  /** VHOST_VDPA_GET_VQS_COUNT */
  getVqsCount(): number {
    return this.#live().numQueues;
  }

  /** VHOST_VDPA_GET_CONFIG: bytes of struct virtio_net_config. */
  getConfig(offset = 0, length?: number): Uint8Array {
    const c = this.#live().config();
    const len = length ?? c.length - offset;
    if (!Number.isInteger(offset) || !Number.isInteger(len) || offset < 0 || len < 0 || offset + len > c.length) throw new KernelError("EINVAL", `config range ${offset}+${len} outside ${c.length} bytes`);
    return c.slice(offset, offset + len);
  }

  /** VHOST_SET_MEM_TABLE / IOTLB updates: the guest memory DMA addresses refer to. */
  setMemory(mem: GuestMemory): void {
    this.#live().setMemory(mem);
  }

  /** VHOST_SET_VRING_NUM */
  setVringNum(q: number, num: number): void {
    const e = this.#queue(q);
    if (!Number.isInteger(num) || num < 1 || num > MAX_VQ_SIZE || (num & (num - 1)) !== 0) throw new KernelError("EINVAL", `queue size ${num} is not a power of two in 1..${MAX_VQ_SIZE}`);
    e.setVringNum(q, num);
  }

  /** VHOST_SET_VRING_ADDR (guest-physical: the device does DMA on those). */
  setVringAddr(q: number, addr: VringAddress): void {
    const e = this.#queue(q);
    for (const v of [addr.desc, addr.avail, addr.used]) if (!Number.isSafeInteger(v) || v < 0) throw new KernelError("EINVAL", "ring address out of range");
    e.setVringAddr(q, addr);
  }

  /** VHOST_SET_VRING_BASE */
  setVringBase(q: number, base: number): void {
    const e = this.#queue(q);
    if (!Number.isInteger(base) || base < 0 || base > 0xffff) throw new KernelError("EINVAL", `ring base ${base} is not a u16`);
    e.setVringBase(q, base);
  }

  /** VHOST_GET_VRING_BASE: the queue's last_avail_idx. */
  getVringBase(q: number): number {
    return this.#queue(q).getVringBase(q);
  }

  /** VHOST_SET_VRING_CALL: the interrupt (an eventfd in real life). */
  setVringCall(q: number, fn: (() => void) | null): void {
    this.#queue(q).setVringCall(q, fn);
  }

  /** VHOST_VDPA_SET_VRING_ENABLE */
  setVringEnable(q: number, on: boolean): void {
    this.#queue(q).setVringReady(q, on);
  }

  /** VHOST_VDPA_SET_CONFIG_CALL */
  setConfigCall(fn: (() => void) | null): void {
    this.#live().setConfigCall(fn);
  }

  /** VHOST_SET_VRING_KICK's eventfd being signalled: the guest rang the doorbell of queue q. */
  kick(q: number): void {
    this.#queue(q).kick(q);
  }

  /** VHOST_VDPA_SUSPEND / VHOST_VDPA_RESUME */
  suspend(): void {
    this.#live().suspend();
  }
  resume(): void {
    this.#live().resume();
  }

  /** close(2): resets the device (stopping the data plane) and frees the device for deletion. */
  close(): void {
    if (this.#closed) return;
    this.engine.reset();
    this.engine.setMemory(null);
    this.#closed = true;
    this.onClose();
  }
}

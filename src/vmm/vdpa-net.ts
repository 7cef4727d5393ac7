import type { VhostVdpaHandle } from "../host/index.js";
import type { MsixCapability } from "../pci/index.js";
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_F_ACCESS_PLATFORM,
  VIRTIO_F_VERSION_1,
  VIRTIO_ID_NET,
  VIRTIO_MSI_NO_VECTOR,
  VIRTIO_NET_F_CTRL_MAC_ADDR,
  VIRTIO_NET_F_CTRL_RX,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_STATUS,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  bit,
} from "../virtio/index.js";
import type { ActivateContext, TransportHooks, VirtioDevice } from "../virtio/index.js";
import type { VirtioPciTransport } from "../virtio/index.js";
import { VmmError } from "./errors.js";

/** The net feature bits vpf passes through from a vDPA device to its guest (no MQ: one queue pair). */
const PASSED_NET_FEATURES =
  bit(VIRTIO_NET_F_MTU) | bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_NET_F_STATUS) | bit(VIRTIO_NET_F_CTRL_VQ) | bit(VIRTIO_NET_F_CTRL_RX) | bit(VIRTIO_NET_F_CTRL_MAC_ADDR);
/** Transport and ring bits the vDPA device must see if negotiated. */
const PASSED_TRANSPORT_FEATURES = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_RING_F_INDIRECT_DESC);

/** What fixes a VdpaNetDevice's guest-visible layout before any backend is attached. */
export interface VdpaNetProfile {
  readonly ctrl: boolean;
  readonly maxQueueSize: number;
  readonly features: bigint;
}

/** struct virtio_net_config up to and including mtu (§5.1.4): mac[6], status, max_virtqueue_pairs, mtu. */
const NET_CONFIG_SIZE = 12;

/**
 * A virtio-net device whose data plane is a vhost-vdpa backend, as QEMU's `-netdev vhost-vdpa`
 * with `virtio-net-pci` (the paper's method): the hypervisor only relays the control path. At
 * DRIVER_OK it hands the backend the guest memory and each ring's size and addresses
 * (VHOST_SET_VRING_NUM/ADDR/BASE), wires the backend's call to the queue's MSI-X vector directly
 * (KVM's irqfd: no device model on the interrupt path) and sets DRIVER_OK; from then on the NIC
 * VF serves the rings in guest memory. Doorbells are relayed as kicks (ioeventfd → vhost kick).
 *
 * The backend is swappable: a vVF has one only while it is enabled (`attachBackend`).
 *
 * Queues as the guest sees them: receiveq 0, transmitq 1, controlq 2 when CTRL_VQ is offered;
 * the backend's control queue is its last queue (index 2 × max_vq_pairs), and vpf maps it.
 */
export class VdpaNetDevice implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_NET;
  #handle: VhostVdpaHandle | undefined;
  #backendFeatures = 0n;
  #backendQueues = 0;
  #maxQueueSize = 0;
  #hooks: TransportHooks | undefined;
  #transport: VirtioPciTransport | undefined;
  #msix: MsixCapability | undefined;
  #active = false;
  /** Whether the guest-visible queue set includes a control queue; fixed by the first backend. */
  #ctrl: boolean | undefined;
  /** Calls forwarded to the guest as MSI-X messages, kicks forwarded to the backend. */
  readonly stats = { calls: 0, kicks: 0, activations: 0, activationFailures: 0 };
  /** Why the last activation failed (the device then reported DEVICE_NEEDS_RESET). */
  lastError: string | undefined;

  /**
   * With a handle: takes it as the backend. With a profile instead: a device with no backend yet
   * whose queue layout is fixed in advance (a pre-built vVF), to which only backends of the same
   * layout can be attached.
   */
  constructor(handle?: VhostVdpaHandle, profile?: VdpaNetProfile) {
    if (handle !== undefined) this.attachBackend(handle);
    else if (profile !== undefined) {
      this.#ctrl = profile.ctrl;
      this.#maxQueueSize = profile.maxQueueSize;
      this.#backendFeatures = profile.features;
    }
  }

  /** The queue layout and features this device presents (for pre-building alike devices). */
  get profile(): VdpaNetProfile {
    return { ctrl: this.#ctrl === true, maxQueueSize: this.#maxQueueSize, features: this.#backendFeatures };
  }

  /** Connects the transport this device sits behind (for queue vectors) and its MSI-X capability. */
  connect(transport: VirtioPciTransport, msix: MsixCapability): void {
    this.#transport = transport;
    this.#msix = msix;
  }

  get backend(): VhostVdpaHandle | undefined {
    return this.#handle;
  }

  /** Takes a backend; reads what it offers. Throws the backend's error if it cannot be queried. */
  attachBackend(handle: VhostVdpaHandle): void {
    const features = handle.getFeatures();
    const queues = handle.getVqsCount();
    const max = handle.getVringNum();
    const ctrl = (features & bit(VIRTIO_NET_F_CTRL_VQ)) !== 0n;
    // The transport's queue set was fixed by the first backend; a vVF instance reused with
    // another backend must look the same to the guest.
    if (this.#ctrl !== undefined && ctrl !== this.#ctrl) {
      throw new VmmError("VMM_BACKEND_FAILED", `backend ${handle.deviceName} ${ctrl ? "has" : "lacks"} a control queue, unlike this device's first backend`);
    }
    if (this.#ctrl !== undefined && max < this.#maxQueueSize) {
      throw new VmmError("VMM_BACKEND_FAILED", `backend ${handle.deviceName} takes queues of at most ${max}, this device offers ${this.#maxQueueSize}`);
    }
    this.#ctrl = ctrl;
    this.#handle = handle;
    this.#backendFeatures = features;
    this.#backendQueues = queues;
    if (this.#maxQueueSize === 0) this.#maxQueueSize = max;
    handle.setConfigCall(() => this.#hooks?.configChanged());
  }

  /** Stops the data plane (status 0) and lets the backend go; returns it. */
  detachBackend(): VhostVdpaHandle | undefined {
    const h = this.#handle;
    if (h === undefined) return undefined;
    this.#stop();
    if (!h.closed) h.setConfigCall(null);
    this.#handle = undefined;
    return h;
  }

  get numQueues(): number {
    return this.#ctrl === true ? 3 : 2;
  }

  queueMaxSize(_queue: number): number {
    return this.#maxQueueSize;
  }

  offeredFeatures(): bigint {
    return this.#backendFeatures & PASSED_NET_FEATURES;
  }

  validateFeatures(f: bigint): string | undefined {
    const ctrl = (f & bit(VIRTIO_NET_F_CTRL_VQ)) !== 0n;
    if (!ctrl && (f & (bit(VIRTIO_NET_F_CTRL_RX) | bit(VIRTIO_NET_F_CTRL_MAC_ADDR))) !== 0n) {
      return "CTRL_RX and CTRL_MAC_ADDR need CTRL_VQ (virtio 1.3 §5.1.3.1)";
    }
    return undefined;
  }

  readonly configSize = NET_CONFIG_SIZE;

  readConfig(offset: number, width: 1 | 2 | 4): number {
    const h = this.#handle;
    if (h === undefined || h.closed) return 0;
    const c = h.getConfig();
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + (c[offset + i] ?? 0);
    return v;
  }

  writeConfig(): void {
    // virtio-net's configuration is read-only for the driver (§5.1.4).
  }

  bind(hooks: TransportHooks): void {
    this.#hooks = hooks;
  }

  /** Maps a guest queue index to the backend's. */
  #backendQueue(q: number): number {
    return q < 2 ? q : this.#backendQueues - 1;
  }

  activate(ctx: ActivateContext): void {
    const h = this.#handle;
    const t = this.#transport;
    if (h === undefined || t === undefined) {
      ctx.needsReset("no vhost-vdpa backend");
      return;
    }
    try {
      h.setMemory(ctx.memory);
      const features = ctx.features & (PASSED_NET_FEATURES | PASSED_TRANSPORT_FEATURES);
      const platform = this.#backendFeatures & bit(VIRTIO_F_ACCESS_PLATFORM);
      h.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
      h.setFeatures(features | platform);
      h.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
      for (let q = 0; q < ctx.queues.length; q++) {
        const info = t.queueInfo(q);
        if (info === undefined || !info.enabled) continue;
        const bq = this.#backendQueue(q);
        h.setVringNum(bq, info.size);
        h.setVringAddr(bq, { desc: info.descAddr, avail: info.availAddr, used: info.usedAddr });
        h.setVringBase(bq, 0);
        h.setVringCall(bq, () => this.#call(q));
        h.setVringEnable(bq, true);
      }
      h.setStatus(VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
      this.#active = true;
      this.stats.activations++;
    } catch (e) {
      this.stats.activationFailures++;
      this.lastError = e instanceof Error ? e.message : String(e);
      this.#stop();
      ctx.needsReset(`vhost-vdpa backend refused activation: ${this.lastError}`);
    }
  }

  /** The backend's call: the queue's MSI-X message, sent directly (irqfd). */
  #call(q: number): void {
    const v = this.#transport?.queueInfo(q)?.msixVector ?? VIRTIO_MSI_NO_VECTOR;
    const m = this.#msix;
    this.stats.calls++;
    if (m === undefined || v === VIRTIO_MSI_NO_VECTOR || v >= m.vectors) return;
    m.notify(v);
  }

  queueEnabled(q: number): void {
    // A queue enabled after DRIVER_OK: the backend serves only the queues it had at DRIVER_OK
    // (vhost-vdpa starts rings at DRIVER_OK), so the driver must reset to add one.
    this.#transport?.needsReset(`queue ${q} enabled after DRIVER_OK is not supported by the vhost-vdpa backend`);
  }

  queueNotify(q: number): void {
    const h = this.#handle;
    if (h === undefined || !this.#active) return;
    this.stats.kicks++;
    try {
      h.kick(this.#backendQueue(q));
    } catch (e) {
      // A doorbell is a guest write: whatever the backend says, it must not escape as an exception.
      this.lastError = e instanceof Error ? e.message : String(e);
      this.#transport?.needsReset(`vhost-vdpa backend refused a kick: ${this.lastError}`);
    }
  }

  reset(): void {
    this.#stop();
  }

  #stop(): void {
    this.#active = false;
    const h = this.#handle;
    if (h !== undefined && !h.closed) h.setStatus(0);
  }
}

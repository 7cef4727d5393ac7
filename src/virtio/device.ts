/**
 * Device logic apart from transport (STYLE.md: Firecracker's VirtioDevice). A device states its
 * type, queues, offered features and configuration bytes; it receives guest memory, its queues
 * and the means to interrupt only on activation (DRIVER_OK), and loses them on reset. It never
 * sees PCI registers, so the same device serves any transport.
 */
import type { GuestMemory } from "../memory/index.js";
import type { SplitQueueDevice } from "./device-queue.js";

/** What the transport gives a device when the driver sets DRIVER_OK. */
export interface ActivateContext {
  readonly memory: GuestMemory;
  /** The features the driver accepted (a subset of those offered). */
  readonly features: bigint;
  /**
   * The device's queues by index (admin queues excluded); undefined for a queue the driver did
   * not enable. Live: a queue enabled after DRIVER_OK appears here and queueEnabled() is called.
   */
  readonly queues: readonly (SplitQueueDevice | undefined)[];
  /** Publishes nothing itself: interrupts the driver for queue q if its ring asks for it. */
  signalUsed(queue: number): void;
  /** Bumps config_generation and sends the configuration-change interrupt. */
  signalConfig(): void;
  /** Sets DEVICE_NEEDS_RESET and interrupts the driver (§2.1.2). */
  needsReset(reason: string): void;
  /** Whether the device may touch guest memory now (PCI: Bus Master Enable). */
  dmaAllowed(): boolean;
}

/** Hooks the transport installs on a device as soon as they are bound (before activation). */
export interface TransportHooks {
  /** The device's configuration bytes changed (link status, MAC): generation and interrupt. */
  configChanged(): void;
}

export interface VirtioDevice {
  /** virtio device type (§5: 1 = network card). */
  readonly deviceType: number;
  /** Number of queues the device has, admin queues excluded. */
  readonly numQueues: number;
  /** Largest size the driver may give queue q. */
  queueMaxSize(queue: number): number;
  /** Device-type and ring feature bits offered (the transport adds VERSION_1 and its own). */
  offeredFeatures(): bigint;
  /**
   * Checks a feature set the driver wants to accept beyond "offered" (dependencies such as
   * CTRL_RX needing CTRL_VQ, §5.1.3.1). Returns why it is refused, or undefined.
   */
  validateFeatures(features: bigint): string | undefined;
  /** Bytes of device-specific configuration. */
  readonly configSize: number;
  readConfig(offset: number, width: 1 | 2 | 4): number;
  writeConfig(offset: number, width: 1 | 2 | 4, value: number): void;
  bind(hooks: TransportHooks): void;
  activate(ctx: ActivateContext): void;
  /** A queue was enabled after DRIVER_OK (it is already in ctx.queues). */
  queueEnabled(queue: number): void;
  /** The driver notified queue q. */
  queueNotify(queue: number): void;
  /** Device reset: forget memory, queues and negotiated state; keep cumulative counters. */
  reset(): void;
}

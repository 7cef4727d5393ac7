import type { Clock } from "../base/index.js";
import { EswitchPort } from "./port.js";
import type { Eswitch } from "./eswitch.js";
import type { PciAddress } from "./pci-address.js";

/** A host netdev's receive handler; the frame is the handler's own copy. */
export type FrameHandler = (frame: Uint8Array) => void;

/**
 * The physical function of a NIC port as its eswitch sees it: the host's netdev (bound to the
 * PF driver). The PF is a trunk port: it sends and receives tagged frames as they are.
 */
export class PhysicalFunction extends EswitchPort {
  readonly kind = "pf" as const;
  #handler: FrameHandler | null = null;

  constructor(
    readonly name: string,
    readonly pciAddress: PciAddress,
    macKey: number,
    private readonly clock: Clock,
    private readonly eswitch: Eswitch,
    private readonly uplinkUp: () => boolean,
  ) {
    super();
    this.macKey = macKey;
  }

  get vst(): null {
    return null;
  }
  get linkUp(): boolean {
    return this.uplinkUp();
  }

  /** Sets where frames for the host netdev go; null drops them (counted as rx_dropped). */
  setReceiver(handler: FrameHandler | null): void {
    this.#handler = handler;
  }

  /** Host promiscuous / all-multicast mode (IFF_PROMISC / IFF_ALLMULTI). */
  setRxMode(mode: { promisc?: boolean; allmulti?: boolean; multicast?: readonly number[] | null }): void {
    if (mode.promisc !== undefined) this.promiscRequested = mode.promisc;
    if (mode.allmulti !== undefined) this.allmultiRequested = mode.allmulti;
    if (mode.multicast !== undefined) this.multicastFilter = mode.multicast === null ? null : new Set(mode.multicast);
  }

  /** The host transmits a frame on the PF netdev. */
  send(frame: Uint8Array): void {
    if (frame.length < 14 || !this.linkUp) {
      this.counters.txDropped++;
      return;
    }
    this.counters.txPackets++;
    this.counters.txBytes += frame.length;
    if (this.taps.length > 0) this.tap(frame, "tx", this.clock.now());
    this.eswitch.forward(this, frame);
  }

  egress(frame: Uint8Array): void {
    if (this.#handler === null || !this.linkUp) {
      this.counters.rxDropped++;
      return;
    }
    this.countRx(frame);
    if (this.taps.length > 0) this.tap(frame, "rx", this.clock.now());
    this.#handler(frame.slice());
  }
}

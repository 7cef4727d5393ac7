import type { Clock } from "../base/index.js";
import { EswitchPort } from "./port.js";
import type { Eswitch } from "./eswitch.js";

/** Something on the far end of a cable: it gets every frame the NIC sends onto the wire. */
export type WireReceiver = (frame: Uint8Array) => void;

/**
 * The uplink (physical port) of a NIC port, and the wire behind it. External hosts and tests
 * attach a receiver to get frames the NIC transmits and call `send` to put frames on the wire
 * towards the NIC. The uplink is a trunk: frames pass with their tags as they are.
 */
export class Uplink extends EswitchPort {
  readonly kind = "uplink" as const;
  #carrier = true;
  #peer: WireReceiver | null = null;
  readonly #carrierListeners: ((up: boolean) => void)[] = [];

  constructor(
    readonly name: string,
    private readonly clock: Clock,
    private readonly eswitch: Eswitch,
  ) {
    super();
  }

  get vst(): null {
    return null;
  }
  get linkUp(): boolean {
    return this.#carrier;
  }
  override accepts(): boolean {
    return true;
  }
  override acceptsFlood(): boolean {
    return true;
  }

  /** Attaches the far end (replacing any previous one); null detaches it. */
  attach(peer: WireReceiver | null): void {
    this.#peer = peer;
  }

  /** Physical link (cable and far-end port) up or down. */
  setCarrier(up: boolean): void {
    if (up === this.#carrier) return;
    this.#carrier = up;
    for (const l of [...this.#carrierListeners]) l(up);
  }

  onCarrierChange(listener: (up: boolean) => void): void {
    this.#carrierListeners.push(listener);
  }

  /** A frame arrives from the wire. */
  send(frame: Uint8Array): void {
    if (!this.#carrier || frame.length < 14) {
      this.counters.rxDropped++;
      return;
    }
    this.countRx(frame);
    if (this.taps.length > 0) this.tap(frame, "rx", this.clock.now());
    this.eswitch.forward(this, frame);
  }

  egress(frame: Uint8Array): void {
    if (!this.#carrier) {
      this.counters.txDropped++;
      return;
    }
    const c = this.counters;
    c.txPackets++;
    c.txBytes += frame.length;
    if (this.taps.length > 0) this.tap(frame, "tx", this.clock.now());
    // The far end keeps its own copy: the frame may be a view into some guest's memory.
    this.#peer?.(frame.slice());
  }
}

/** Connects two uplinks back to back with a cable. */
export function connectUplinks(a: Uplink, b: Uplink): void {
  a.attach((f) => b.send(f));
  b.attach((f) => a.send(f));
}

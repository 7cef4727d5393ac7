import { PcapWriter } from "../wire/index.js";
import type { PcapOptions } from "../wire/index.js";
import type { EswitchPort, FrameTap, TapDirection } from "./port.js";

/**
 * A tap that records every frame crossing a port into a classic pcap file (wire's PcapWriter),
 * time-stamped from the virtual clock, as tcpdump on that port's netdev would: frames as that
 * side sees them (untagged on a VST VF, tagged on the uplink). `directions` narrows it to rx or tx.
 */
export class PcapTap implements FrameTap {
  readonly writer: PcapWriter;
  readonly #dirs: ReadonlySet<TapDirection>;
  #detach: (() => void) | null = null;

  constructor(options?: PcapOptions & { directions?: readonly TapDirection[] }) {
    this.writer = new PcapWriter(options);
    this.#dirs = new Set(options?.directions ?? ["rx", "tx"]);
  }

  /** Starts capturing on a port; returns this tap. */
  static on(port: EswitchPort, options?: PcapOptions & { directions?: readonly TapDirection[] }): PcapTap {
    const t = new PcapTap(options);
    t.#detach = port.addTap(t);
    return t;
  }

  capture(frame: Uint8Array, direction: TapDirection, timeNs: bigint): void {
    if (this.#dirs.has(direction)) this.writer.write(timeNs, frame);
  }

  /** Stops capturing (if attached with `on`). */
  stop(): void {
    this.#detach?.();
    this.#detach = null;
  }

  /** The pcap file so far. */
  bytes(): Uint8Array {
    return this.writer.bytes();
  }

  get packetCount(): number {
    return this.writer.packetCount;
  }
}

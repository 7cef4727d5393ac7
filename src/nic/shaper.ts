import type { VirtualClock, TimerHandle } from "../base/index.js";
import { NicError } from "./errors.js";

/**
 * A token bucket on the virtual clock: the transmit shaper behind a VF's max_tx_rate.
 *
 * Rates are in Mbit/s as `ip link set ... vf N max_tx_rate` gives them (1 Mbit = 10^6 bits,
 * rtnetlink's ifla_vf_rate). Bytes counted are the frame as the VF hands it to the eswitch
 * (Ethernet header and payload, no FCS, preamble or inter-frame gap). The bucket is a deficit
 * bucket: a frame may go whenever the level is not negative and then takes its full size, so
 * a frame larger than the remaining credit is never stuck, and the long-run rate is exact.
 * Depth (burst) is max(2 × 9216 B, 50 µs at the configured rate), like a hardware shaper whose
 * burst covers a couple of jumbo frames.
 */
export class TokenBucket {
  #rateBytesPerNs = 0;
  #depth = 0;
  #level = 0;
  #lastNs = 0;

  constructor(private readonly clock: VirtualClock) {}

  /** 0 turns shaping off. */
  setRateMbps(mbps: number): void {
    if (!Number.isFinite(mbps) || mbps < 0) throw new NicError("NIC_BAD_ARGUMENT", `rate ${mbps} Mbit/s is not a non-negative number`, { mbps });
    this.#rateBytesPerNs = mbps / 8000; // 10^6 bit/s / 8 / 10^9 ns
    this.#depth = Math.max(2 * 9216, this.#rateBytesPerNs * 50_000);
    this.#level = this.#depth;
    this.#lastNs = Number(this.clock.now());
  }

  get active(): boolean {
    return this.#rateBytesPerNs > 0;
  }

  #refill(): void {
    const now = Number(this.clock.now());
    const dt = now - this.#lastNs;
    if (dt > 0) {
      this.#level = Math.min(this.#depth, this.#level + dt * this.#rateBytesPerNs);
      this.#lastNs = now;
    }
  }

  /** True when a frame may be sent now. */
  ready(): boolean {
    if (this.#rateBytesPerNs === 0) return true;
    this.#refill();
    return this.#level >= 0;
  }

  consume(bytes: number): void {
    if (this.#rateBytesPerNs === 0) return;
    this.#refill();
    this.#level -= bytes;
  }

  /** Nanoseconds until ready() turns true (at least 1). */
  nsUntilReady(): bigint {
    this.#refill();
    if (this.#level >= 0 || this.#rateBytesPerNs === 0) return 1n;
    return BigInt(Math.max(1, Math.ceil(-this.#level / this.#rateBytesPerNs)));
  }
}

/** Runs `fn` once at now + delay unless one is already pending. */
export class Wakeup {
  #pending: TimerHandle | null = null;
  constructor(
    private readonly clock: VirtualClock,
    private readonly fn: () => void,
  ) {}
  schedule(delayNs: bigint): void {
    if (this.#pending !== null) return;
    this.#pending = this.clock.after(delayNs, () => {
      this.#pending = null;
      this.fn();
    });
  }
  cancel(): void {
    this.#pending?.cancel();
    this.#pending = null;
  }
}

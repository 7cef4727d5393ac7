import type { HostVlan } from "./policy.js";
import type { VfLinkStateValue, VfStats } from "./vf-admin.js";

/**
 * What the hypervisor does to one host VF on its guest's behalf: the host facade's
 * `ip link set <pf> vf N ...` operations, narrowed to the VF behind one backend. The vmm never
 * touches the NIC directly (DESIGN.md §3.2); an adapter over src/host implements this
 * (host-adapter.ts), and every method may throw — a throw is reported to the guest as EIO /
 * HOST_FAILED (or ENOMEM / NORESOURCE when the error says resources ran out).
 */
export interface HostVfOps {
  /** Index of the host VF, for messages and status. */
  readonly hostVf: number;
  /** `vf N mac`; all-zero clears the administrative MAC. */
  setMac(mac: Uint8Array): void;
  /** `vf N vlan V qos Q proto P`, with an inner C-tag in QinQ mode. */
  setVlan(v: HostVlan): void;
  setSpoofchk(on: boolean): void;
  setTrust(on: boolean): void;
  setLinkState(state: VfLinkStateValue): void;
  /** `vf N min_tx_rate m max_tx_rate M` in Mbit/s; 0 = none. */
  setRate(minMbps: number, maxMbps: number): void;
  /** IFLA_VF_STATS of the host VF. */
  stats(): VfStats;
  /**
   * All of the above in one host operation (one `ip link set <pf> vf N mac .. vlan .. spoofchk ..
   * trust .. state .. min_tx_rate .. max_tx_rate ..`), validated as a whole before any is
   * applied: what bind and unbind use.
   */
  configure(s: HostVfSettings): void;
  /** Whether another port of the same embedded switch uses `mac` (unicast uniqueness). */
  macInUseElsewhere(mac: Uint8Array): boolean;
}

/** A full host VF configuration (see HostVfOps.configure). */
export interface HostVfSettings {
  /** Absent: leave the MAC as it is. */
  readonly mac?: Uint8Array;
  readonly vlan: HostVlan;
  readonly spoofchk: boolean;
  readonly trust: boolean;
  readonly linkState: VfLinkStateValue;
  readonly minTxRateMbps: number;
  readonly maxTxRateMbps: number;
}

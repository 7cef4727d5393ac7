import { MacAddress } from "../wire/index.js";
import { VmmError } from "./errors.js";
import { AdminQualifier, AdminStatus, ETH_P_8021AD, ETH_P_8021Q, type VfVlan } from "./vf-admin.js";

/**
 * Host policy for one VM (DESIGN.md §5): what its guest may configure on the host VFs behind its
 * vVFs. The hypervisor checks every guest admin command against it before anything reaches the
 * host; a refusal is answered with status EPERM and a qualifier naming the rule, and counted.
 */
export interface VmPolicy {
  readonly vlan: VlanPolicy;
  /** MAC addresses the guest may set must lie inside this prefix (e.g. "02:00:5e:00:00:00/24"). */
  readonly macPrefix?: string;
  /** Whether the guest may turn spoof checking off on its VFs (the host turns it on at bind). */
  readonly allowSpoofchkOff: boolean;
  /** Whether the guest may mark a VF trusted (promiscuous mode, MAC changes by the VF driver). */
  readonly allowTrust: boolean;
  /** Ceiling for max_tx_rate in Mbit/s; also applied when the guest asks for "no limit" (0). */
  readonly maxTxRateMbps?: number;
  /** Ceiling for min_tx_rate (guaranteed bandwidth) in Mbit/s. */
  readonly minTxRateMbps?: number;
}

/**
 * VLAN modes. `allow-list`: the guest's VLAN ID must be in the list; 0 in the list lets a VF run
 * without a host-enforced tag (the guest then tags its own frames, VGT, with any ID: list 0 only
 * for tenants trusted with the whole wire). `qinq`: the host always pushes the tenant's 802.1ad
 * S-tag (PCP `outerPcp`); a guest VLAN 1..4094 becomes the inner 802.1Q C-tag with the guest's
 * QoS as its PCP (the host VF's two-tag VST), and VLAN 0 leaves the S-tag alone.
 */
export type VlanPolicy =
  | {
      readonly mode: "allow-list";
      readonly allowed: readonly number[];
      readonly initial?: number;
      /**
       * Whether the allowed IDs may also be used as 802.1ad S-tags (default false: 802.1Q only).
       * An S-VLAN is a forwarding domain of its own, possibly another tenant's QinQ outer tag.
       */
      readonly allow8021ad?: boolean;
    }
  | { readonly mode: "qinq"; readonly outerVid: number; readonly outerPcp?: number };

/** A refusal: status and qualifier of the admin result, and a sentence for logs. */
export interface PolicyRefusal {
  readonly status: number;
  readonly qualifier: number;
  readonly reason: string;
}

/** The host-side VLAN setting a guest VLAN request maps to. */
export interface HostVlan {
  /** The tag the host VF pushes (VST), or none. */
  readonly vlan: number;
  readonly qos: number;
  readonly proto: number;
  /** In QinQ mode with a guest VLAN: the C-tag under the S-tag. */
  readonly inner?: { readonly vlan: number; readonly qos: number };
}

interface Prefix {
  readonly key: number;
  readonly bits: number;
}

/** The checked, compiled form of a VmPolicy. */
export class PolicyEngine {
  readonly policy: VmPolicy;
  readonly #prefix: Prefix | undefined;
  readonly #allowed: ReadonlySet<number> | undefined;

  constructor(policy: VmPolicy) {
    const bad = (why: string): never => {
      throw new VmmError("VMM_BAD_ARGUMENT", `policy: ${why}`);
    };
    const v = policy.vlan;
    if (v.mode === "allow-list") {
      if (v.allowed.length === 0) bad("the VLAN allow-list is empty");
      for (const id of v.allowed) if (!Number.isInteger(id) || id < 0 || id > 4095) bad(`VLAN ID ${id} is not 0..4095`);
      if (v.initial !== undefined && !v.allowed.includes(v.initial)) bad(`initial VLAN ${v.initial} is not in the allow-list`);
      this.#allowed = new Set(v.allowed);
    } else if (v.mode === "qinq") {
      if (!Number.isInteger(v.outerVid) || v.outerVid < 1 || v.outerVid > 4094) bad(`outer VLAN ${v.outerVid} is not 1..4094`);
      const pcp = v.outerPcp ?? 0;
      if (!Number.isInteger(pcp) || pcp < 0 || pcp > 7) bad(`outer PCP ${pcp} is not 0..7`);
    } else {
      bad("unknown VLAN mode");
    }
    for (const [name, r] of [["maxTxRateMbps", policy.maxTxRateMbps], ["minTxRateMbps", policy.minTxRateMbps]] as const) {
      if (r !== undefined && (!Number.isInteger(r) || r < 1 || r > 0xffffffff)) bad(`${name} ${r} is not 1..2^32-1`);
    }
    this.#prefix = policy.macPrefix === undefined ? undefined : parsePrefix(policy.macPrefix);
    this.policy = policy;
  }

  /** The guest-visible VLAN a freshly bound VF starts with. */
  initialVlan(): VfVlan {
    const v = this.policy.vlan;
    if (v.mode === "qinq") return { vlan: 0, qos: 0, vlanProto: ETH_P_8021Q };
    return { vlan: v.initial ?? v.allowed[0] ?? 0, qos: 0, vlanProto: ETH_P_8021Q };
  }

  /** Checks a guest VLAN request and maps it to the host setting. */
  checkVlan(req: VfVlan): PolicyRefusal | HostVlan {
    const v = this.policy.vlan;
    if (v.mode === "qinq") {
      // The S-tag is the host's: the guest's own VLAN is a C-tag underneath it.
      if (req.vlanProto !== ETH_P_8021Q) {
        return refuse(AdminQualifier.POLICY_VLAN_PROTO, "802.1ad is reserved for the host's outer tag in QinQ mode");
      }
      // VID 4095 is reserved (IEEE 802.1Q-2018 Table 9-2): no C-tag can carry it.
      if (req.vlan === 4095) return refuse(AdminQualifier.POLICY_VLAN, "VLAN 4095 is reserved and cannot ride under the tenant's S-tag");
      // The outer PCP is the host's; the guest's QoS marks its own C-tag.
      const outer = { vlan: v.outerVid, qos: v.outerPcp ?? 0, proto: ETH_P_8021AD };
      return req.vlan === 0 ? outer : { ...outer, inner: { vlan: req.vlan, qos: req.qos } };
    }
    if (!(this.#allowed?.has(req.vlan) ?? false)) {
      return refuse(AdminQualifier.POLICY_VLAN, `VLAN ${req.vlan} is not in the allow-list`);
    }
    if (req.vlanProto === ETH_P_8021AD && v.allow8021ad !== true && req.vlan !== 0) {
      return refuse(AdminQualifier.POLICY_VLAN_PROTO, "802.1ad S-tags are not allowed for this VM");
    }
    return { vlan: req.vlan, qos: req.qos, proto: req.vlanProto };
  }

  /** Checks a MAC the guest wants (all-zero clears it and is always allowed). */
  checkMac(mac: Uint8Array, inUseElsewhere: boolean): PolicyRefusal | undefined {
    const key = MacAddress.fromBytes(mac).key;
    if (key === 0) return undefined;
    const p = this.#prefix;
    if (p !== undefined && Math.floor(key / 2 ** (48 - p.bits)) !== Math.floor(p.key / 2 ** (48 - p.bits))) {
      return refuse(AdminQualifier.POLICY_MAC_PREFIX, `MAC ${MacAddress.fromKey(key).toString()} is outside ${this.policy.macPrefix ?? ""}`);
    }
    if (inUseElsewhere) return refuse(AdminQualifier.POLICY_MAC_IN_USE, `MAC ${MacAddress.fromKey(key).toString()} is already in use on the eswitch`);
    return undefined;
  }

  checkSpoofchk(enabled: boolean): PolicyRefusal | undefined {
    return !enabled && !this.policy.allowSpoofchkOff ? refuse(AdminQualifier.POLICY_SPOOFCHK, "this VM may not disable spoof checking") : undefined;
  }

  checkTrust(enabled: boolean): PolicyRefusal | undefined {
    return enabled && !this.policy.allowTrust ? refuse(AdminQualifier.POLICY_TRUST, "this VM may not set trust") : undefined;
  }

  /** Checks rates; returns the host's rates (a guest "no limit" becomes the ceiling). */
  checkRate(minMbps: number, maxMbps: number): PolicyRefusal | { min: number; max: number } {
    const maxCeil = this.policy.maxTxRateMbps;
    const minCeil = this.policy.minTxRateMbps;
    if (maxCeil !== undefined && maxMbps > maxCeil) return refuse(AdminQualifier.POLICY_RATE, `max_tx_rate ${maxMbps} exceeds the ceiling ${maxCeil}`);
    if (minCeil !== undefined && minMbps > minCeil) return refuse(AdminQualifier.POLICY_RATE, `min_tx_rate ${minMbps} exceeds the ceiling ${minCeil}`);
    const max = maxMbps === 0 ? (maxCeil ?? 0) : maxMbps;
    if (max !== 0 && minMbps > max) return refuse(AdminQualifier.POLICY_RATE, `min_tx_rate ${minMbps} exceeds the enforced maximum ${max}`);
    return { min: minMbps, max };
  }
}

function refuse(qualifier: number, reason: string): PolicyRefusal {
  return { status: AdminStatus.EPERM, qualifier, reason };
}

export function isRefusal(x: unknown): x is PolicyRefusal {
  return typeof x === "object" && x !== null && "qualifier" in x && "status" in x;
}

/** "aa:bb:cc:00:00:00/24" → prefix key and length (1..48). */
function parsePrefix(text: string): Prefix {
  const slash = text.indexOf("/");
  const bits = slash < 0 ? 48 : Number(text.slice(slash + 1));
  if (!Number.isInteger(bits) || bits < 1 || bits > 48) throw new VmmError("VMM_BAD_ARGUMENT", `policy: MAC prefix length in ${JSON.stringify(text)} is not 1..48`);
  let mac: MacAddress;
  try {
    mac = MacAddress.parse(slash < 0 ? text : text.slice(0, slash));
  } catch (e) {
    throw new VmmError("VMM_BAD_ARGUMENT", `policy: MAC prefix ${JSON.stringify(text)} is not a MAC address`, { cause: e });
  }
  if (mac.isMulticast) throw new VmmError("VMM_BAD_ARGUMENT", `policy: MAC prefix ${text} is a group address`);
  return { key: mac.key, bits };
}

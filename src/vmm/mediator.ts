import { VmmError } from "./errors.js";
import type { HostVfOps } from "./host-vf.js";
import { isRefusal, type HostVlan, type PolicyEngine, type PolicyRefusal } from "./policy.js";
import {
  AdminOpcode,
  AdminQualifier,
  AdminStatus,
  ETH_P_8021Q,
  VfLinkState,
  decodeCommandData,
  encodeMacResult,
  encodeVfConfig,
  encodeVfStats,
  encodeVlan,
  qualifierName,
  type VfAdminCommand,
  type VfConfig,
} from "./vf-admin.js";

/** What a handler answers (the shape of src/virtio's AdminResponse). */
export interface MediatorResponse {
  readonly status: number;
  readonly qualifier?: number;
  readonly result?: Uint8Array;
}

/** Counters of guest VF-configuration requests, for the host operator. */
export interface MediatorCounters {
  commands: number;
  applied: number;
  /** Valid requests refused by host policy, by qualifier name (POLICY_VLAN, ...). */
  refused: Record<string, number>;
  /** Requests the decoder rejected (EINVAL). */
  invalid: number;
  /** Requests the host facade failed (EIO, ENOMEM, EAGAIN, or EINVAL for a value only the host knows is out of range). */
  hostFailed: number;
}

interface Member {
  readonly host: HostVfOps;
  /** The host VF's MAC when it was bound (the host administrator's choice), restored at unbind. */
  readonly originalMac: Uint8Array;
  /** The configuration as the guest sees it (QinQ: its own inner tag). */
  config: VfConfig;
}

/** The opcodes the mediator serves, all addressed to a member VF. */
export const MEDIATED_OPCODES: readonly number[] = [
  AdminOpcode.VF_GET_CONFIG,
  AdminOpcode.VF_SET_MAC,
  AdminOpcode.VF_GET_MAC,
  AdminOpcode.VF_SET_VLAN,
  AdminOpcode.VF_GET_VLAN,
  AdminOpcode.VF_SET_SPOOFCHK,
  AdminOpcode.VF_SET_TRUST,
  AdminOpcode.VF_SET_LINK_STATE,
  AdminOpcode.VF_SET_RATE,
  AdminOpcode.VF_GET_STATS,
];

/**
 * Mediation of guest VF configuration (DESIGN.md §4, §5): an admin command for member n is
 * checked against the VM's policy and applied to the host VF bound to vVF n, through the host
 * facade. A refused or failed command changes nothing, on the host or in the guest's view.
 */
export class VfConfigMediator {
  readonly policy: PolicyEngine;
  readonly counters: MediatorCounters = { commands: 0, applied: 0, refused: {}, invalid: 0, hostFailed: 0 };
  readonly #members = new Map<number, Member>();

  constructor(policy: PolicyEngine) {
    this.policy = policy;
  }

  /** The configuration a freshly bound VF starts with (host defaults under this policy). */
  initialConfig(mac: Uint8Array = new Uint8Array(6)): VfConfig {
    const v = this.policy.initialVlan();
    return {
      mac: mac.slice(0, 6),
      vlan: v.vlan,
      qos: v.qos,
      vlanProto: v.vlanProto,
      spoofchk: true,
      trust: false,
      linkState: VfLinkState.AUTO,
      minTxRateMbps: 0,
      maxTxRateMbps: 0,
    };
  }

  /**
   * Binds member `vf` to a host VF and programs the host defaults: the initial VLAN (QinQ: the
   * tenant's S-tag), spoof checking on, trust off, link auto, the rate ceiling. The MAC stays the
   * one the host gave the backend (`mac`, e.g. from `vdpa dev add ... mac`), which the guest
   * sees first. Throws VMM_BACKEND_FAILED if the host refuses (the caller rolls back).
   */
  bind(vf: number, host: HostVfOps, mac: Uint8Array = new Uint8Array(6)): void {
    if (this.#members.has(vf)) throw new VmmError("VMM_BAD_STATE", `vVF ${vf} is already bound`);
    const config = this.initialConfig(mac);
    const vlan = this.policy.checkVlan(config);
    const rate = this.policy.checkRate(0, 0);
    try {
      if (isRefusal(vlan) || isRefusal(rate)) throw new VmmError("VMM_BAD_ARGUMENT", "the policy refuses its own defaults");
      host.configure({ vlan, spoofchk: true, trust: false, linkState: VfLinkState.AUTO, minTxRateMbps: rate.min, maxTxRateMbps: rate.max });
    } catch (e) {
      throw new VmmError("VMM_BACKEND_FAILED", `host VF ${host.hostVf} refused its defaults for vVF ${vf}`, { cause: e, details: { vf, hostVf: host.hostVf } });
    }
    this.#members.set(vf, { host, config, originalMac: config.mac.slice() });
  }

  /**
   * Unbinds member `vf` and leaves its host VF neutral for the next holder: the MAC it had at
   * bind, no VLAN, spoof checking on, trust off, no rate limit, link auto. Host errors are swallowed (the VF
   * goes back to the pool regardless; the next bind programs it again).
   */
  unbind(vf: number): void {
    const m = this.#members.get(vf);
    if (m === undefined) return;
    this.#members.delete(vf);
    try {
      const mac = sameBytes(m.config.mac, m.originalMac) ? {} : { mac: m.originalMac };
      m.host.configure({ ...mac, vlan: { vlan: 0, qos: 0, proto: ETH_P_8021Q }, spoofchk: true, trust: false, linkState: VfLinkState.AUTO, minTxRateMbps: 0, maxTxRateMbps: 0 });
    } catch {
      this.counters.hostFailed++;
    }
  }

  bound(vf: number): boolean {
    return this.#members.has(vf);
  }
  /** The guest's view of member `vf`'s configuration. */
  config(vf: number): VfConfig | undefined {
    const m = this.#members.get(vf);
    return m === undefined ? undefined : { ...m.config, mac: m.config.mac.slice() };
  }

  /** Handles one command for member `vf` (header already validated by the admin transport). */
  handle(opcode: number, vf: number, data: Uint8Array): MediatorResponse {
    this.counters.commands++;
    const d = decodeCommandData(opcode, vf, data);
    if (!d.ok) {
      this.counters.invalid++;
      return { status: d.status, qualifier: d.qualifier };
    }
    const m = this.#members.get(vf);
    if (m === undefined) {
      // The transport checked 1..NumVFs; a member without a binding cannot happen while VF
      // Enable is set, but answer as the spec would for a missing member.
      return { status: AdminStatus.EINVAL, qualifier: AdminQualifier.INVALID_MEMBER };
    }
    return this.#apply(m, d.value);
  }

  #apply(m: Member, cmd: VfAdminCommand): MediatorResponse {
    const cfg = m.config;
    switch (cmd.op) {
      case "get-config":
        return ok(encodeVfConfig(cfg));
      case "get-mac":
        return ok(encodeMacResult(cfg.mac));
      case "get-vlan":
        return ok(encodeVlan(cfg));
      case "get-stats":
        return this.#host(() => ok(encodeVfStats(m.host.stats())));
      case "set-mac": {
        if (sameBytes(cmd.mac, cfg.mac)) return this.#done();
        // Setting a VF back to the MAC the host gave it at bind is always allowed, inside the
        // prefix or not: SR-IOV CNI restores a VF's original MAC on DEL. It is this VF's own
        // address, so it cannot collide with another VF's.
        const r = sameBytes(cmd.mac, m.originalMac) ? undefined : this.policy.checkMac(cmd.mac, !isZero(cmd.mac) && this.#safe(() => m.host.macInUseElsewhere(cmd.mac)));
        if (r !== undefined) return this.#refuse(r);
        return this.#host(() => {
          m.host.setMac(cmd.mac);
          cfg.mac = cmd.mac.slice();
          return this.#done();
        });
      }
      case "set-vlan": {
        if (cmd.vlan === cfg.vlan && cmd.qos === cfg.qos && cmd.vlanProto === cfg.vlanProto) return this.#done();
        const r = this.policy.checkVlan(cmd);
        if (isRefusal(r)) return this.#refuse(r);
        const hv: HostVlan = r;
        return this.#host(() => {
          m.host.setVlan(hv);
          cfg.vlan = cmd.vlan;
          cfg.qos = cmd.qos;
          cfg.vlanProto = cmd.vlanProto;
          return this.#done();
        });
      }
      case "set-spoofchk": {
        if (cmd.enabled === cfg.spoofchk) return this.#done();
        const r = this.policy.checkSpoofchk(cmd.enabled);
        if (r !== undefined) return this.#refuse(r);
        return this.#host(() => {
          m.host.setSpoofchk(cmd.enabled);
          cfg.spoofchk = cmd.enabled;
          return this.#done();
        });
      }
      case "set-trust": {
        if (cmd.enabled === cfg.trust) return this.#done();
        const r = this.policy.checkTrust(cmd.enabled);
        if (r !== undefined) return this.#refuse(r);
        return this.#host(() => {
          m.host.setTrust(cmd.enabled);
          cfg.trust = cmd.enabled;
          return this.#done();
        });
      }
      case "set-link-state": {
        if (cmd.state === cfg.linkState) return this.#done();
        return this.#host(() => {
          m.host.setLinkState(cmd.state);
          cfg.linkState = cmd.state;
          return this.#done();
        });
      }
      case "set-rate": {
        if (cmd.minTxRateMbps === cfg.minTxRateMbps && cmd.maxTxRateMbps === cfg.maxTxRateMbps) return this.#done();
        const r = this.policy.checkRate(cmd.minTxRateMbps, cmd.maxTxRateMbps);
        if (isRefusal(r)) return this.#refuse(r);
        return this.#host(() => {
          m.host.setRate(r.min, r.max);
          cfg.minTxRateMbps = cmd.minTxRateMbps;
          cfg.maxTxRateMbps = cmd.maxTxRateMbps;
          return this.#done();
        });
      }
      case "list-query":
      case "list-use":
        // Owned by the admin transport; never routed here.
        return { status: AdminStatus.EINVAL, qualifier: AdminQualifier.INVALID_OPCODE };
    }
  }

  #done(): MediatorResponse {
    this.counters.applied++;
    return { status: AdminStatus.OK };
  }

  #refuse(r: PolicyRefusal): MediatorResponse {
    const name = qualifierName(r.qualifier);
    this.counters.refused[name] = (this.counters.refused[name] ?? 0) + 1;
    return { status: r.status, qualifier: r.qualifier };
  }

  /**
   * Runs a host operation; a throw becomes ENOMEM/NORESOURCE (exhaustion), EINVAL/INVALID_FIELD
   * (the host's EINVAL), EAGAIN/TRYAGAIN (EBUSY, EAGAIN) or EIO/HOST_FAILED (anything else).
   */
  #host(fn: () => MediatorResponse): MediatorResponse {
    try {
      return fn();
    } catch (e) {
      this.counters.hostFailed++;
      const code = typeof e === "object" && e !== null && "code" in e ? String((e).code) : "";
      if (code === "ENOSPC" || code === "ENOMEM" || code.endsWith("_FULL") || code.endsWith("_EXHAUSTED")) {
        return { status: AdminStatus.ENOMEM, qualifier: AdminQualifier.NORESOURCE };
      }
      // The host facade validates a whole request before applying any of it, so a value it calls
      // invalid (a rate above the line rate) changed nothing: the spec's EINVAL fits (§2.12.1.2).
      if (code === "EINVAL") return { status: AdminStatus.EINVAL, qualifier: AdminQualifier.INVALID_FIELD };
      if (code === "EBUSY" || code === "EAGAIN") return { status: AdminStatus.EAGAIN, qualifier: AdminQualifier.TRYAGAIN };
      return { status: AdminStatus.EIO, qualifier: AdminQualifier.HOST_FAILED };
    }
  }

  /** A host query that must not fail the command: an error counts as "in use" (fail closed). */
  #safe(fn: () => boolean): boolean {
    try {
      return fn();
    } catch {
      this.counters.hostFailed++;
      return true;
    }
  }
}

function ok(result: Uint8Array): MediatorResponse {
  return { status: AdminStatus.OK, result };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isZero(a: Uint8Array): boolean {
  return a.every((x) => x === 0);
}

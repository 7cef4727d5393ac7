import type { Host } from "../host/index.js";
import type { VhostVdpaHandle } from "../host/index.js";
import { MacAddress } from "../wire/index.js";
import { VmmError } from "./errors.js";
import type { HostVfOps, HostVfSettings } from "./host-vf.js";
import type { HostVlan } from "./policy.js";
import type { VfLinkStateValue, VfStats } from "./vf-admin.js";

/**
 * One backend a VM can be given: a vDPA device on a host VF. `open` is open(/dev/vhost-vdpa-N)
 * (it may fail: another opener, a deleted device); `control` configures the host VF behind it
 * through the host facade (`ip link set <pf> vf N ...`).
 */
export interface VfBackend {
  /** The vDPA device name (`vdpa dev show`). */
  readonly name: string;
  open(): VhostVdpaHandle;
  readonly control: HostVfOps;
}

/**
 * The backend for vDPA device `vdpaName` on `host`: the host VF is found from the device's
 * management device (`pci/<VF address>`), as an operator would read it from `vdpa dev show`.
 * Throws VMM_BAD_ARGUMENT when the device does not exist or is not on a VF of this host's NIC.
 */
export function hostBackend(host: Host, vdpaName: string): VfBackend {
  let mgmtdev: string;
  try {
    const info = host.vdpaDevShow(vdpaName)[0];
    if (info === undefined) throw new VmmError("VMM_BAD_ARGUMENT", `no vDPA device ${vdpaName}`);
    mgmtdev = info.mgmtdev;
  } catch (e) {
    if (e instanceof VmmError) throw e;
    throw new VmmError("VMM_BAD_ARGUMENT", `no vDPA device ${vdpaName}`, { cause: e });
  }
  const addr = mgmtdev.replace(/^pci\//, "");
  const vf = host.nic.findVf(addr);
  if (vf === undefined) throw new VmmError("VMM_BAD_ARGUMENT", `vDPA device ${vdpaName} is not on a VF of this NIC (${mgmtdev})`);
  const pf = host.pfName(vf.portIndex);
  return { name: vdpaName, open: () => host.openVhostVdpa(vdpaName), control: new HostVfControl(host, pf, vf.index) };
}

/** HostVfOps over the host facade for VF `vf` of PF netdev `pf`. */
export class HostVfControl implements HostVfOps {
  constructor(
    readonly host: Host,
    readonly pf: string,
    readonly hostVf: number,
  ) {}

  setMac(mac: Uint8Array): void {
    this.host.setVf(this.pf, this.hostVf, { mac: MacAddress.fromBytes(mac) });
  }

  configure(s: HostVfSettings): void {
    this.#checkVlan(s.vlan);
    this.host.setVf(this.pf, this.hostVf, {
      ...(s.mac === undefined ? {} : { mac: MacAddress.fromBytes(s.mac) }),
      vlan: { vlan: s.vlan.vlan, qos: s.vlan.qos, proto: s.vlan.proto },
      spoofchk: s.spoofchk,
      trust: s.trust,
      state: s.linkState,
      minTxRate: s.minTxRateMbps,
      maxTxRate: s.maxTxRateMbps,
    });
  }

  #checkVlan(v: HostVlan): void {
    if (v.inner !== undefined && v.inner.vlan !== 0) {
      // A stacked VST (host S-tag over a guest C-tag) needs a VF that pushes two tags; Linux's
      // IFLA_VF_VLAN_LIST carries one entry (MAX_VLAN_LIST_LEN = 1) and the NIC model one tag.
      throw new VmmError("VMM_BACKEND_FAILED", `host VF ${this.hostVf}: a guest VLAN under the tenant's 802.1ad tag needs two-tag VST, which the host does not offer`);
    }
  }

  setVlan(v: HostVlan): void {
    this.#checkVlan(v);
    this.host.setVf(this.pf, this.hostVf, { vlan: { vlan: v.vlan, qos: v.qos, proto: v.proto } });
  }

  setSpoofchk(on: boolean): void {
    this.host.setVf(this.pf, this.hostVf, { spoofchk: on });
  }

  setTrust(on: boolean): void {
    this.host.setVf(this.pf, this.hostVf, { trust: on });
  }

  setLinkState(state: VfLinkStateValue): void {
    this.host.setVf(this.pf, this.hostVf, { state });
  }

  setRate(minMbps: number, maxMbps: number): void {
    this.host.setVf(this.pf, this.hostVf, { minTxRate: minMbps, maxTxRate: maxMbps });
  }

  stats(): VfStats {
    const info = this.host.getVfInfo(this.pf).vfs.find((v) => v.vf === this.hostVf);
    const s = info?.stats;
    if (s === undefined) throw new VmmError("VMM_BACKEND_FAILED", `host VF ${this.hostVf} of ${this.pf} reports no statistics`);
    return { ...s };
  }

  macInUseElsewhere(mac: Uint8Array): boolean {
    const key = MacAddress.fromBytes(mac).key;
    // The embedded switch of this PF's port forwards by MAC among the PF and its VFs.
    const info = this.host.getVfInfo(this.pf, { skipStats: true });
    if (info.address.key === key) return true;
    return info.vfs.some((v) => v.vf !== this.hostVf && v.mac.key === key);
  }
}

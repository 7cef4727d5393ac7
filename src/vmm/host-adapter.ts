import type { Host, VfInfo, VfSetRequest } from "../host/index.js";
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

  /** The VF's state read by prefetchHostState for the next configure (used once). */
  prefetched: VfInfo | undefined;

  /**
   * One `ip link set` with every attribute; with a prefetched state, only the attributes that
   * differ (none: no host call at all), since every VLAN or MAC change makes the NIC rebuild its
   * forwarding tables.
   */
  configure(s: HostVfSettings): void {
    const cur = this.prefetched;
    this.prefetched = undefined;
    const req: VfSetRequest = {};
    if (s.mac !== undefined && (cur === undefined || cur.mac.key !== MacAddress.fromBytes(s.mac).key)) req.mac = MacAddress.fromBytes(s.mac);
    if (cur === undefined || cur.vlan !== s.vlan.vlan || cur.qos !== s.vlan.qos || cur.vlanProto !== s.vlan.proto || !sameInner(cur.innerVlan, s.vlan.inner)) {
      req.vlan = hostVlanRequest(s.vlan);
    }
    if (cur === undefined || cur.spoofchk !== s.spoofchk) req.spoofchk = s.spoofchk;
    if (cur === undefined || cur.trust !== s.trust) req.trust = s.trust;
    if (cur === undefined || cur.linkState !== s.linkState) req.state = s.linkState;
    if (cur === undefined || cur.minTxRate !== s.minTxRateMbps || cur.maxTxRate !== s.maxTxRateMbps) {
      req.minTxRate = s.minTxRateMbps;
      req.maxTxRate = s.maxTxRateMbps;
    }
    if (Object.keys(req).length > 0) this.host.setVf(this.pf, this.hostVf, req);
  }

  setVlan(v: HostVlan): void {
    this.host.setVf(this.pf, this.hostVf, { vlan: hostVlanRequest(v) });
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

/**
 * The host facade's `vlan` attribute for a HostVlan. A guest VLAN under the tenant's S-tag
 * (QinQ mode) uses the facade's two-tag VST extension (`inner`), which goes beyond what Linux's
 * IFLA_VF_VLAN_LIST (MAX_VLAN_LIST_LEN = 1) can carry; docs/host.md.
 */
function hostVlanRequest(v: HostVlan): NonNullable<VfSetRequest["vlan"]> {
  const base = { vlan: v.vlan, qos: v.qos, proto: v.proto };
  return v.inner === undefined || v.inner.vlan === 0 ? base : { ...base, inner: { vlan: v.inner.vlan, qos: v.inner.qos } };
}

function sameInner(cur: VfInfo["innerVlan"], want: HostVlan["inner"]): boolean {
  const w = want === undefined || want.vlan === 0 ? undefined : want;
  if (cur === undefined || w === undefined) return cur === w;
  return cur.vlan === w.vlan && cur.qos === w.qos;
}

/**
 * Reads the current state of the host VFs behind `backends` with one query per PF (what
 * `ip -d link show <pf>` gives an operator) and hands each VF's state to its control for its next
 * `configure`, which then sends only what differs. VF Enable calls it for all the backends it is
 * about to bind, so binding N VFs costs one O(N) read instead of N rebuilds of unchanged state.
 * Backends whose control is not a HostVfControl are left alone; a failed read leaves them
 * unprefetched (configure then sends everything). Returns a function that drops whatever was not
 * used, so no state read now can be mistaken for the truth later.
 */
export function prefetchHostState(backends: readonly VfBackend[]): () => void {
  const groups = new Map<Host, Map<string, HostVfControl[]>>();
  for (const b of backends) {
    const c = b.control;
    if (!(c instanceof HostVfControl)) continue;
    let byPf = groups.get(c.host);
    if (byPf === undefined) groups.set(c.host, (byPf = new Map<string, HostVfControl[]>()));
    const list = byPf.get(c.pf);
    if (list === undefined) byPf.set(c.pf, [c]);
    else list.push(c);
  }
  for (const [host, byPf] of groups) {
    for (const [pf, controls] of byPf) {
      let vfs: VfInfo[];
      try {
        vfs = host.getVfInfo(pf, { skipStats: true }).vfs;
      } catch {
        continue;
      }
      const byIndex = new Map(vfs.map((v) => [v.vf, v]));
      for (const c of controls) c.prefetched = byIndex.get(c.hostVf);
    }
  }
  return () => {
    for (const byPf of groups.values()) for (const list of byPf.values()) for (const c of list) c.prefetched = undefined;
  };
}

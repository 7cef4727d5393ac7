/**
 * A small machine for the guest's own tests and benchmarks, built from the real src/pci and
 * src/virtio objects on a PciBus (no hypervisor, no NIC): a PCIe root port with ARI forwarding,
 * behind it a virtio-net PF with MSI-X, ARI, SR-IOV and the admin virtqueue, whose VFs appear as
 * virtio-net functions when VF Enable is set. Frames between functions go through a tiny
 * learning-free L2 hub keyed by MAC. VF configuration admin commands are answered from a table,
 * with a configurable VLAN allow-list so refusals can be tested. The vmm builds the real thing.
 */
import { GuestMemory } from "../memory/index.js";
import { AriCapability, MsixCapability, PciBus, PciExpressCapability, PciFunction, SriovCapability, type PciEffect } from "../pci/index.js";
import type { ActivateContext, VirtioDevice } from "../virtio/device.js";
import { VirtioPciTransport } from "../virtio/pci-transport.js";
import {
  AdminOpcode,
  AdminQualifier,
  AdminStatus,
  decodeAdminCommand,
  encodeVfConfig,
  encodeVfStats,
  type VfConfig,
} from "../vmm/vf-admin.js";

const NET_F = (b: number): bigint => 1n << BigInt(b);
const VNET_HDR = 12;

/** A virtio-net device whose data plane is the test hub. */
export class HubNetDevice implements VirtioDevice {
  readonly deviceType = 1;
  readonly numQueues = 3;
  readonly configSize = 12;
  ctx: ActivateContext | undefined;
  linkUp = true;
  rxDropped = 0;
  txFrames = 0;

  constructor(
    public mac: Uint8Array,
    readonly hub: Hub,
  ) {
    hub.ports.add(this);
  }

  queueMaxSize(): number {
    return 256;
  }
  offeredFeatures(): bigint {
    // MAC, STATUS, CTRL_VQ, CTRL_MAC_ADDR.
    return NET_F(5) | NET_F(16) | NET_F(17) | NET_F(23);
  }
  validateFeatures(): string | undefined {
    return undefined;
  }
  readConfig(offset: number, width: 1 | 2 | 4): number {
    const b = new Uint8Array(12);
    b.set(this.mac, 0);
    b[6] = this.linkUp ? 1 : 0;
    b[8] = 1;
    b[10] = 1500 & 0xff;
    b[11] = 1500 >> 8;
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + (b[offset + i] ?? 0);
    return v;
  }
  writeConfig(): void {
    // Read-only configuration in the model.
  }
  bind(): void {
    // No configuration changes are raised by the hub device.
  }
  activate(ctx: ActivateContext): void {
    this.ctx = ctx;
  }
  queueEnabled(): void {
    // Queues are looked up at use.
  }
  reset(): void {
    this.ctx = undefined;
  }
  queueNotify(q: number): void {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    const vq = ctx.queues[q];
    if (vq === undefined) return;
    if (q === 1) {
      const out: Uint8Array[] = [];
      for (;;) {
        const c = vq.pop();
        if (c === undefined) break;
        out.push(vq.readChain(c, VNET_HDR));
        vq.pushUsed(c.head, 0);
      }
      ctx.signalUsed(1);
      for (const f of out) {
        this.txFrames++;
        this.hub.forward(this, f);
      }
    } else if (q === 2) {
      for (;;) {
        const c = vq.pop();
        if (c === undefined) break;
        const cmd = vq.readChain(c);
        if (cmd[0] === 1 && cmd[1] === 1 && cmd.length >= 8) this.mac = cmd.slice(2, 8);
        vq.writeChain(c, Uint8Array.of(0));
        vq.pushUsed(c.head, 1);
      }
      ctx.signalUsed(2);
    }
  }
  setMac(mac: Uint8Array): void {
    this.mac = mac.slice();
  }

  deliver(frame: Uint8Array): void {
    const ctx = this.ctx;
    const vq = ctx?.queues[0];
    if (ctx === undefined || vq === undefined) {
      this.rxDropped++;
      return;
    }
    const c = vq.pop();
    if (c === undefined) {
      this.rxDropped++;
      return;
    }
    const buf = new Uint8Array(VNET_HDR + frame.length);
    buf.set(frame, VNET_HDR);
    const n = vq.writeChain(c, buf);
    vq.pushUsed(c.head, n);
    ctx.signalUsed(0);
  }
}

/** Delivers a frame to the port whose MAC matches, or to every other port for group addresses. */
export class Hub {
  readonly ports = new Set<HubNetDevice>();
  forwarded = 0;
  forward(from: HubNetDevice, f: Uint8Array): void {
    const group = ((f[0] ?? 0) & 1) === 1;
    for (const p of this.ports) {
      if (p === from) continue;
      if (group || p.mac.every((b, i) => f[i] === b)) {
        this.forwarded++;
        p.deliver(f);
      }
    }
  }
}

export interface TestMachineOptions {
  readonly totalVfs?: number;
  /** VLAN IDs the "host" permits; anything else is refused with EPERM. Default: all. */
  readonly vlanAllow?: readonly number[];
  /** Offer VIRTIO_F_SR_IOV (default true: the SR-IOV capability is present). */
  readonly sriov?: boolean;
  readonly adminQueue?: boolean;
}

export class TestMachine {
  readonly memory = new GuestMemory(64 * 1024 * 1024);
  readonly bus = new PciBus();
  readonly hub = new Hub();
  readonly pf: PciFunction;
  readonly pfDev: HubNetDevice;
  readonly sriov: SriovCapability | undefined;
  readonly vfConfigs = new Map<number, VfConfig>();
  readonly vfDevs = new Map<number, HubNetDevice>();
  readonly #vfTransports = new Map<number, VirtioPciTransport>();
  adminCommands = 0;

  constructor(readonly opts: TestMachineOptions = {}) {
    const total = opts.totalVfs ?? 8;
    const port = new PciFunction({ vendorId: 0x8086, deviceId: 0x7c00, classCode: 0x060400, express: true, headerType: 1 });
    new PciExpressCapability(port, { type: "root-port", ariForwarding: true });
    this.bus.attach(port, { bus: 0, device: 1, function: 0 });

    this.pf = new PciFunction({ vendorId: 0x1af4, deviceId: 0x1041, classCode: 0x020000, revision: 1, subsystemVendorId: 0x1af4, subsystemId: 0x1100, express: true, multifunction: true });
    this.pf.defineBar(0, { kind: "mem64", size: 0x4000, prefetchable: true });
    new PciExpressCapability(this.pf, { type: "endpoint", flr: true });
    const msix = new MsixCapability(this.pf, { vectors: 8, tableBar: 0, tableOffset: 0x3000, pbaBar: 0, pbaOffset: 0x3800 });
    if (opts.sriov !== false) {
      new AriCapability(this.pf);
      this.sriov = new SriovCapability(this.pf, {
        totalVfs: total,
        firstVfOffset: 1,
        vfStride: 1,
        vfDeviceId: 0x1041,
        vfBars: [{ index: 0, kind: "mem64", size: 0x4000, prefetchable: true }],
      });
    } else this.sriov = undefined;
    this.pfDev = new HubNetDevice(Uint8Array.of(0x52, 0x54, 0, 0, 0, 0x01), this.hub);
    const t = new VirtioPciTransport({ fn: this.pf, device: this.pfDev, memory: this.memory, bar: 0, msix, adminQueue: opts.adminQueue !== false });
    if (t.admin !== undefined) this.#registerAdmin(t);
    this.bus.attach(this.pf, { bus: 1, device: 0, function: 0 });
    this.bus.onEffects((fn, _rid, effects) => {
      if (fn === this.pf) this.#effects(effects);
    });
  }

  get platform(): PciBus {
    return this.bus;
  }

  #effects(effects: readonly PciEffect[]): void {
    const sr = this.sriov;
    if (sr === undefined) return;
    for (const e of effects) {
      if (e.kind === "vfs-enabled") {
        for (let n = 1; n <= e.numVfs; n++) {
          let dev = this.vfDevs.get(n);
          if (dev === undefined) {
            const vf = sr.vfFunction(n, { classCode: 0x020000, revision: 1, subsystemVendorId: 0x1af4, subsystemId: 0x1100 });
            dev = new HubNetDevice(Uint8Array.of(0x52, 0x54, 0, 0, 1, n & 0xff), this.hub);
            const vmsix = new MsixCapability(vf, { vectors: 4, tableBar: 0, tableOffset: 0x3000, pbaBar: 0, pbaOffset: 0x3800 });
            this.#vfTransports.set(n, new VirtioPciTransport({ fn: vf, device: dev, memory: this.memory, bar: 0, msix: vmsix }));
            this.vfDevs.set(n, dev);
            this.vfConfigs.set(n, { mac: dev.mac.slice(), vlan: 0, qos: 0, vlanProto: 0x8100, spoofchk: true, trust: false, linkState: 0, minTxRateMbps: 0, maxTxRateMbps: 0 });
          }
        }
        this.bus.attachEnabledVfs(this.pf, { classCode: 0x020000, revision: 1, subsystemVendorId: 0x1af4, subsystemId: 0x1100 });
      } else if (e.kind === "vfs-disabled") {
        this.bus.detachVfs(this.pf);
      }
    }
  }

  #registerAdmin(t: VirtioPciTransport): void {
    const reg = t.admin;
    if (reg === undefined) return;
    const h = (name: string, fn: (vf: number, data: Uint8Array, opcode: number) => { status: number; qualifier?: number; result?: Uint8Array }): void => {
      const opcode = AdminOpcode[name as keyof typeof AdminOpcode];
      reg.register(opcode, {
        name,
        usesMember: true,
        handle: (cmd) => {
          this.adminCommands++;
          return fn(cmd.memberId, cmd.data, cmd.opcode);
        },
      });
    };
    const decode = (vf: number, opcode: number, data: Uint8Array) => {
      const hdr = new Uint8Array(24 + data.length);
      hdr[0] = opcode & 0xff;
      hdr[1] = opcode >> 8;
      hdr[2] = 1;
      hdr[16] = vf & 0xff;
      hdr[17] = vf >> 8;
      hdr.set(data, 24);
      return decodeAdminCommand(hdr);
    };
    // The registry checks the member before calling a handler; a VF without a record is
    // answered as an invalid member all the same rather than thrown into the guest's MMIO write.
    const noMember = { status: AdminStatus.EINVAL, qualifier: AdminQualifier.INVALID_MEMBER };
    h("VF_GET_CONFIG", (vf) => {
      const c = this.vfConfigs.get(vf);
      return c === undefined ? noMember : { status: 0, result: encodeVfConfig(c) };
    });
    h("VF_GET_STATS", (vf) => {
      const d = this.vfDevs.get(vf);
      const tx = BigInt(d?.txFrames ?? 0);
      return { status: 0, result: encodeVfStats({ rxPackets: 0n, txPackets: tx, rxBytes: 0n, txBytes: 0n, broadcast: 0n, multicast: 0n, rxDropped: BigInt(d?.rxDropped ?? 0), txDropped: 0n }) };
    });
    const set = (name: string): void => {
      h(name, (vf, data, opcode) => {
        const r = decode(vf, opcode, data);
        if (!r.ok) return { status: r.status, qualifier: r.qualifier };
        const c = this.vfConfigs.get(vf);
        if (c === undefined) return noMember;
        const v = r.value;
        switch (v.op) {
          case "set-mac":
            c.mac = v.mac;
            this.vfDevs.get(vf)?.setMac(v.mac);
            break;
          case "set-vlan":
            if (this.opts.vlanAllow !== undefined && v.vlan !== 0 && !this.opts.vlanAllow.includes(v.vlan)) {
              return { status: AdminStatus.EPERM, qualifier: AdminQualifier.POLICY_VLAN };
            }
            c.vlan = v.vlan;
            c.qos = v.qos;
            c.vlanProto = v.vlanProto;
            break;
          case "set-spoofchk":
            c.spoofchk = v.enabled;
            break;
          case "set-trust":
            c.trust = v.enabled;
            break;
          case "set-link-state":
            c.linkState = v.state;
            break;
          case "set-rate":
            c.minTxRateMbps = v.minTxRateMbps;
            c.maxTxRateMbps = v.maxTxRateMbps;
            break;
          default:
            return { status: AdminStatus.EINVAL, qualifier: AdminQualifier.INVALID_OPCODE };
        }
        return { status: 0 };
      });
    };
    for (const n of ["VF_SET_MAC", "VF_SET_VLAN", "VF_SET_SPOOFCHK", "VF_SET_TRUST", "VF_SET_LINK_STATE", "VF_SET_RATE"]) set(n);
  }
}

/**
 * The guest's virtio_net driver (virtio 1.x §5.1; Linux drivers/net/virtio_net.c), one netdev
 * per virtio device, plus the VF operations of DESIGN.md §4 that stock Linux lacks
 * (reference/netlink-vf.md §9): ndo_get_vf_config, ndo_set_vf_{mac,vlan,spoofchk,trust,
 * link_state,rate} and ndo_get_vf_stats, carried to the hypervisor as vpf admin commands on the
 * PF's admin virtqueue (virtio 1.3 §2.12, codec in src/vmm/vf-admin.ts).
 */
import type { GuestAllocator, GuestMemory } from "../memory/index.js";
import {
  AdminOpcode,
  ADMIN_RESULT_HEADER_LEN,
  decodeAdminResult,
  decodeOpcodeList,
  decodeVfConfig,
  decodeVfStats,
  encodeAdminCommand,
  opcodeFor,
  qualifierName,
  resultLength,
  statusErrno,
  SUPPORTED_OPCODES,
  type VfAdminCommand,
} from "../vmm/vf-admin.js";
import { sysErr } from "./errors.js";
import { NetDevice, type NetDeviceOps, type VfInfo, type VfStats } from "./netdev.js";
import type { PciCore } from "./pci-core.js";
import { VIRTIO_F_ADMIN_VQ, VIRTIO_STATUS_DRIVER_OK, type VirtioDriver, type VirtioPciDevice } from "./virtio-pci.js";
import type { SplitVirtqueue } from "./virtqueue.js";

export const VIRTIO_ID_NET = 1;
export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_MTU = 3;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_F_CTRL_VQ = 17;
export const VIRTIO_NET_F_CTRL_MAC_ADDR = 23;
export const VIRTIO_NET_S_LINK_UP = 1;

/** struct virtio_net_hdr_v1 (12 bytes with num_buffers, VERSION_1 §5.1.6). */
export const VNET_HDR_LEN = 12;
/** One receive buffer: header plus a VLAN-tagged 1518-byte frame, rounded (Linux's small buffers). */
export const RX_BUF_LEN = 2048;
const TX_BUF_LEN = 2048;

const VIRTIO_NET_CTRL_MAC = 1;
const VIRTIO_NET_CTRL_MAC_ADDR_SET = 1;
const VIRTIO_NET_OK = 0;

export interface VirtioNetHooks {
  readonly core: PciCore;
  readonly memory: GuestMemory;
  readonly alloc: GuestAllocator;
  /** Allocates the eth%d name and registers the netdev in the initial namespace. */
  register(nd: NetDevice, vdev: VirtioPciDevice): void;
  unregister(nd: NetDevice): void;
}

/** Per-device state of the driver (struct virtnet_info). */
export class VirtNet {
  readonly netdev: NetDevice;
  readonly rx: SplitVirtqueue<number>;
  readonly tx: SplitVirtqueue<number>;
  readonly ctrl: SplitVirtqueue<number> | undefined;
  readonly admin: SplitVirtqueue<number> | undefined;
  readonly #rxBufs: number;
  readonly #txBufs: number;
  readonly #txFree: number[] = [];
  readonly #ctrlBuf: number;
  /** Opcodes the device listed in LIST_QUERY and the driver then took with LIST_USE. */
  adminOpcodes: number[] = [];
  readonly #m: GuestMemory;

  constructor(
    readonly vdev: VirtioPciDevice,
    readonly hooks: VirtioNetHooks,
  ) {
    this.#m = hooks.memory;
    const a = vdev.arena;
    // Queue 0 receiveq1, 1 transmitq1, 2 controlq when CTRL_VQ (§5.1.2, without MQ).
    vdev.setupConfigVector(() => {
      this.#configChanged();
    });
    this.rx = vdev.setupQueue<number>(0, () => {
      this.pollRx();
    });
    this.tx = vdev.setupQueue<number>(1, () => {
      this.#reapTx();
    });
    // Transmit completions are reaped on the next send; no interrupt per sent frame.
    this.tx.quiet();
    this.ctrl = vdev.has(VIRTIO_NET_F_CTRL_VQ) ? vdev.setupQueue<number>(2, () => undefined) : undefined;
    const aq = vdev.adminQueueIndex();
    this.admin = aq !== undefined && aq.num > 0 ? vdev.setupQueue<number>(aq.index, () => undefined) : undefined;
    this.#rxBufs = a.alloc(this.rx.size * RX_BUF_LEN, 64);
    this.#txBufs = a.alloc(this.tx.size * TX_BUF_LEN, 64);
    this.#ctrlBuf = a.alloc(4096, 64);
    for (let i = 0; i < this.tx.size; i++) this.#txFree.push(i);

    const mac = new Uint8Array(6);
    if (vdev.has(VIRTIO_NET_F_MAC)) for (let i = 0; i < 6; i++) mac[i] = vdev.readConfig8(i);
    if (!vdev.has(VIRTIO_NET_F_MAC) || (mac[0]! & 1) !== 0 || mac.every((b) => b === 0)) {
      // eth_hw_addr_random (no MAC offered, or an invalid one such as a VF whose administrator
      // has not assigned one yet): a locally administered unicast address, here derived from the
      // BDF so the model stays deterministic.
      mac.set([0x02, 0x00, 0x00, vdev.pci.bus, vdev.pci.devfn, vdev.index & 0xff]);
    }
    const mtu = vdev.has(VIRTIO_NET_F_MTU) ? vdev.readConfig16(10) : 1500;
    this.netdev = new NetDevice("eth%d", mac, this.#ops(), { mtu, maxMtu: vdev.has(VIRTIO_NET_F_MTU) ? mtu : 65535 });
    this.netdev.carrier = this.#linkUp();
  }

  /** Posts every receive buffer, marks DRIVER_OK, takes the admin opcodes (virtnet_probe order). */
  start(): void {
    for (let i = 0; i < this.rx.size; i++) this.#postRx(i);
    this.rx.kick();
    this.vdev.addStatus(VIRTIO_STATUS_DRIVER_OK);
    if (this.admin !== undefined) this.#adminListInit();
  }

  #linkUp(): boolean {
    if (!this.vdev.has(VIRTIO_NET_F_STATUS)) return true;
    return (this.vdev.readConfig16(6) & VIRTIO_NET_S_LINK_UP) !== 0;
  }

  #configChanged(): void {
    this.netdev.carrier = this.#linkUp();
  }

  #postRx(i: number): void {
    this.rx.add([{ addr: this.#rxBufs + i * RX_BUF_LEN, len: RX_BUF_LEN, write: true }], i);
  }

  /** Reaps every completed receive buffer, hands the frames up, and refills the ring. */
  pollRx(): number {
    let n = 0;
    for (;;) {
      const u = this.rx.reap();
      if (u === undefined) break;
      n++;
      const base = this.#rxBufs + u.token * RX_BUF_LEN;
      if (u.len > VNET_HDR_LEN && u.len <= RX_BUF_LEN) {
        const frame = this.#m.read(base + VNET_HDR_LEN, u.len - VNET_HDR_LEN);
        this.#postRx(u.token);
        this.netdev.receive(frame);
      } else {
        this.netdev.stats.rxDropped++;
        this.#postRx(u.token);
      }
    }
    if (n > 0) this.rx.kick();
    return n;
  }

  #reapTx(): void {
    for (;;) {
      const u = this.tx.reap();
      if (u === undefined) break;
      this.#txFree.push(u.token);
    }
  }

  /** Queues one frame without notifying; false when it is too big or the ring stays full. */
  #queueTx(frame: Uint8Array): boolean {
    if (frame.length + VNET_HDR_LEN > TX_BUF_LEN) return false;
    if (this.#txFree.length === 0) {
      // Ring full: let the device see what is queued, then take back what it finished.
      this.tx.kick();
      this.#reapTx();
    }
    const slot = this.#txFree.pop();
    if (slot === undefined) return false;
    const addr = this.#txBufs + slot * TX_BUF_LEN;
    this.#m.fill(addr, VNET_HDR_LEN);
    this.#m.write(addr + VNET_HDR_LEN, frame);
    this.tx.add([{ addr, len: VNET_HDR_LEN + frame.length, write: false }], slot);
    return true;
  }

  #xmit(frame: Uint8Array): boolean {
    const ok = this.#queueTx(frame);
    if (ok) this.tx.kick();
    this.#reapTx();
    return ok;
  }

  /** start_xmit with xmit_more: every frame queued, one doorbell at the end. */
  #xmitBatch(frames: readonly Uint8Array[]): boolean[] {
    const out = frames.map((f) => this.#queueTx(f));
    this.tx.kick();
    this.#reapTx();
    return out;
  }

  /** virtnet_set_mac_address: tells the device through the control queue when it can listen. */
  #setMac(mac: Uint8Array): void {
    if (this.ctrl !== undefined && this.vdev.has(VIRTIO_NET_F_CTRL_MAC_ADDR)) {
      const m = this.#m;
      const b = this.#ctrlBuf;
      m.writeU8(b, VIRTIO_NET_CTRL_MAC);
      m.writeU8(b + 1, VIRTIO_NET_CTRL_MAC_ADDR_SET);
      m.write(b + 2, mac);
      m.writeU8(b + 8, 0xff);
      this.ctrl.add(
        [
          { addr: b, len: 2, write: false },
          { addr: b + 2, len: 6, write: false },
          { addr: b + 8, len: 1, write: true },
        ],
        0,
      );
      this.ctrl.kick();
      const u = this.ctrl.reap();
      if (u === undefined || m.readU8(b + 8) !== VIRTIO_NET_OK) throw sysErr("EINVAL", `${this.netdev.name}: device refused MAC address change`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Admin virtqueue (virtio 1.3 §2.12): one command in flight, completed during the kick.

  /**
   * Sends one admin command and returns the result payload. The vPF completes admin commands
   * synchronously inside the notify write; a command still outstanding afterwards is a device
   * that stopped answering, reported as ETIMEDOUT (Linux would spin, then time out).
   */
  adminCommand(cmd: VfAdminCommand): Uint8Array {
    const q = this.admin;
    if (q === undefined) throw sysErr("EOPNOTSUPP", `${this.netdev.name}: no admin virtqueue`);
    const req = encodeAdminCommand(cmd);
    const resLen = ADMIN_RESULT_HEADER_LEN + resultLength(opcodeFor(cmd.op));
    const m = this.#m;
    const b = this.#ctrlBuf + 1024;
    m.write(b, req);
    m.fill(b + 1024, resLen);
    q.add(
      [
        { addr: b, len: req.length, write: false },
        { addr: b + 1024, len: resLen, write: true },
      ],
      1,
    );
    q.kick();
    const u = q.reap();
    if (u === undefined) throw sysErr("ETIMEDOUT", `${this.netdev.name}: admin command ${cmd.op} did not complete`);
    const res = decodeAdminResult(m.read(b + 1024, Math.min(resLen, Math.max(u.len, ADMIN_RESULT_HEADER_LEN))));
    if (res === undefined) throw sysErr("EIO", `${this.netdev.name}: short admin result`);
    const errno = statusErrno(res.status);
    if (errno !== undefined) {
      throw sysErr(errno, `${this.netdev.name}: admin ${cmd.op} refused: status ${res.status}, qualifier ${qualifierName(res.qualifier)}`, {
        status: res.status,
        qualifier: res.qualifier,
      });
    }
    return res.payload;
  }

  #adminListInit(): void {
    try {
      const offered = decodeOpcodeList(this.adminCommand({ op: "list-query" }));
      const use = SUPPORTED_OPCODES.filter((o) => offered.includes(o));
      this.adminCommand({ op: "list-use", opcodes: use });
      this.adminOpcodes = use;
    } catch {
      // Linux leaves admin commands unused when the lists cannot be exchanged.
      this.adminOpcodes = [];
    }
  }

  #vfCheck(vf: number, opcode: number): void {
    if (this.admin === undefined || !this.adminOpcodes.includes(opcode)) throw sysErr("EOPNOTSUPP");
    const st = this.hooks.core.sriov.get(this.vdev.pci);
    // ndo_* range check against the enabled VFs (netdevsim and mlx5 answer -EINVAL).
    if (st === undefined || !Number.isInteger(vf) || vf < 0 || vf >= st.numVFs) throw sysErr("EINVAL", `VF ${vf} does not exist`);
  }

  #ops(): NetDeviceOps {
    return {
      xmit: (f) => this.#xmit(f),
      xmitBatch: (fs) => this.#xmitBatch(fs),
      setMac: (mac) => {
        this.#setMac(mac);
      },
      numVf: () => this.hooks.core.sriov.get(this.vdev.pci)?.numVFs ?? 0,
      getVfConfig: (vf) => {
        this.#vfCheck(vf, AdminOpcode.VF_GET_CONFIG);
        const c = decodeVfConfig(this.adminCommand({ op: "get-config", vf: vf + 1 }));
        if (c === undefined) throw sysErr("EIO", "bad VF config result");
        const info: VfInfo = {
          vf,
          mac: c.mac,
          vlan: c.vlan,
          qos: c.qos,
          vlanProto: c.vlanProto,
          spoofchk: c.spoofchk,
          trusted: c.trust,
          linkState: c.linkState,
          minTxRate: c.minTxRateMbps,
          maxTxRate: c.maxTxRateMbps,
        };
        return info;
      },
      getVfStats: (vf): VfStats => {
        this.#vfCheck(vf, AdminOpcode.VF_GET_STATS);
        const s = decodeVfStats(this.adminCommand({ op: "get-stats", vf: vf + 1 }));
        if (s === undefined) throw sysErr("EIO", "bad VF stats result");
        return s;
      },
      setVfMac: (vf, mac) => {
        this.#vfCheck(vf, AdminOpcode.VF_SET_MAC);
        if (((mac[0] ?? 0) & 1) !== 0) throw sysErr("EINVAL", "multicast MAC");
        this.adminCommand({ op: "set-mac", vf: vf + 1, mac });
      },
      setVfVlan: (vf, vlan, qos, proto) => {
        this.#vfCheck(vf, AdminOpcode.VF_SET_VLAN);
        if (vlan > 4095 || qos > 7) throw sysErr("EINVAL");
        // mlx5 and ixgbe answer an unknown protocol with -EPROTONOSUPPORT.
        if (proto !== 0x8100 && proto !== 0x88a8) throw sysErr("EPROTONOSUPPORT");
        this.adminCommand({ op: "set-vlan", vf: vf + 1, vlan, qos, vlanProto: proto });
      },
      setVfRate: (vf, min, max) => {
        this.#vfCheck(vf, AdminOpcode.VF_SET_RATE);
        if (max !== 0 && min > max) throw sysErr("EINVAL", "min_tx_rate > max_tx_rate");
        this.adminCommand({ op: "set-rate", vf: vf + 1, minTxRateMbps: min, maxTxRateMbps: max });
      },
      setVfSpoofchk: (vf, on) => {
        this.#vfCheck(vf, AdminOpcode.VF_SET_SPOOFCHK);
        this.adminCommand({ op: "set-spoofchk", vf: vf + 1, enabled: on });
      },
      setVfTrust: (vf, on) => {
        this.#vfCheck(vf, AdminOpcode.VF_SET_TRUST);
        this.adminCommand({ op: "set-trust", vf: vf + 1, enabled: on });
      },
      setVfLinkState: (vf, state) => {
        this.#vfCheck(vf, AdminOpcode.VF_SET_LINK_STATE);
        if (state !== 0 && state !== 1 && state !== 2) throw sysErr("EINVAL", `link state ${state}`);
        this.adminCommand({ op: "set-link-state", vf: vf + 1, state });
      },
    };
  }

  /** Buffers live in the device's DMA arena, which virtio_pci releases at teardown. */
  destroy(): void {
    this.#txFree.length = 0;
  }
}

/** The virtio_net driver object registered with virtio_pci. */
export class VirtioNetDriver implements VirtioDriver {
  readonly name = "virtio_net";
  readonly deviceId = VIRTIO_ID_NET;
  readonly features =
    (1n << BigInt(VIRTIO_NET_F_MAC)) |
    (1n << BigInt(VIRTIO_NET_F_MTU)) |
    (1n << BigInt(VIRTIO_NET_F_STATUS)) |
    (1n << BigInt(VIRTIO_NET_F_CTRL_VQ)) |
    (1n << BigInt(VIRTIO_NET_F_CTRL_MAC_ADDR)) |
    (1n << BigInt(VIRTIO_F_ADMIN_VQ));
  readonly instances = new Map<VirtioPciDevice, VirtNet>();

  constructor(readonly hooks: VirtioNetHooks) {}

  probe(vdev: VirtioPciDevice): void {
    const vi = new VirtNet(vdev, this.hooks);
    try {
      this.hooks.register(vi.netdev, vdev);
    } catch (e) {
      vi.destroy();
      throw e;
    }
    vi.start();
    this.instances.set(vdev, vi);
  }

  remove(vdev: VirtioPciDevice): void {
    const vi = this.instances.get(vdev);
    if (vi === undefined) return;
    this.hooks.unregister(vi.netdev);
    vi.destroy();
    this.instances.delete(vdev);
  }

  /** Polls every device's receive queue (for platforms that deliver without interrupts). */
  pollAll(): number {
    let n = 0;
    for (const vi of this.instances.values()) n += vi.pollRx();
    return n;
  }
}


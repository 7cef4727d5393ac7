import type { VirtualClock } from "../base/index.js";
import { MacAddress } from "../wire/index.js";
import { NicError } from "./errors.js";
import { Eswitch } from "./eswitch.js";
import { PciAddress } from "./pci-address.js";
import { PhysicalFunction } from "./pf.js";
import type { EswitchPort, PortStats } from "./port.js";
import { Uplink } from "./uplink.js";
import { TxArbiter } from "./arbiter.js";
import { VirtualFunction } from "./vf.js";

export interface NicOptions {
  clock: VirtualClock;
  /** Uplink ports, one PF each (ConnectX-6 Dx comes with one or two). Default 1. */
  ports?: number;
  /** TotalVFs of each PF's SR-IOV capability. Default 127, at most 255 minus the PF count. */
  totalVfs?: number;
  /** PCI segment and bus of the PFs. Default 0000:3b. */
  domain?: number;
  bus?: number;
  /** MAC of PF 0; PF p gets this plus p. Default b8:ce:f6:00:00:00 plus the bus number. */
  baseMac?: string;
  /** Line rate of each uplink in Mbit/s (the limit for VF rates). Default 100000. */
  linkSpeedMbps?: number;
}

export const DEFAULT_TOTAL_VFS = 127;

/**
 * One port of the NIC: uplink, PF and that PF's VFs around a legacy eswitch. VFs exist only
 * while enabled (sriov_numvfs); the host facade applies Linux's rules for changing their number.
 */
export class NicPort {
  readonly eswitch = new Eswitch();
  readonly uplink: Uplink;
  readonly pf: PhysicalFunction;
  /** Line-rate transmit arbiter of the port's VFs (min_tx_rate guarantees). */
  readonly txArbiter: TxArbiter;
  #vfs: VirtualFunction[] = [];

  constructor(
    readonly nic: Nic,
    readonly index: number,
    readonly totalVfs: number,
    /** SR-IOV First VF Offset and VF Stride (PCIe r6.0 §9.3.3.9/10): VF i's RID = PF RID + offset + i × stride. */
    readonly vfOffset: number,
    readonly vfStride: number,
    pfAddress: PciAddress,
    pfMac: number,
  ) {
    const clock = nic.clock;
    this.txArbiter = new TxArbiter(clock, nic.linkSpeedMbps);
    this.uplink = new Uplink(`p${index}`, clock, this.eswitch);
    this.pf = new PhysicalFunction(`pf${index}`, pfAddress, pfMac, clock, this.eswitch, () => this.uplink.linkUp);
    this.uplink.onCarrierChange(() => {
      for (const vf of this.#vfs) vf.checkLink();
    });
    this.eswitch.setPorts([this.uplink, this.pf]);
  }

  get numVfs(): number {
    return this.#vfs.length;
  }

  get vfs(): readonly VirtualFunction[] {
    return this.#vfs;
  }

  vf(i: number): VirtualFunction {
    const vf = this.#vfs[i];
    if (vf === undefined) throw new NicError("NIC_BAD_ARGUMENT", `VF ${i} of port ${this.index} does not exist (${this.#vfs.length} enabled)`, { port: this.index, vf: i });
    return vf;
  }

  /** The PCI address VF i has (or would have) while enabled. */
  vfAddress(i: number): PciAddress {
    if (!Number.isInteger(i) || i < 0 || i >= this.totalVfs) throw new NicError("NIC_BAD_ARGUMENT", `VF index ${i} outside 0..${this.totalVfs - 1}`, { vf: i });
    return new PciAddress(this.pf.pciAddress.domain, this.pf.pciAddress.rid + this.vfOffset + i * this.vfStride);
  }

  /** Sets VF Enable with NumVFs = n (SR-IOV control); n must be 1..TotalVFs and no VFs enabled. */
  enableVfs(n: number): void {
    if (this.#vfs.length !== 0) throw new NicError("NIC_BAD_STATE", `port ${this.index} already has ${this.#vfs.length} VFs enabled`, { port: this.index });
    if (!Number.isInteger(n) || n < 1 || n > this.totalVfs) throw new NicError("NIC_BAD_ARGUMENT", `NumVFs ${n} outside 1..${this.totalVfs}`, { port: this.index, n });
    const clock = this.nic.clock;
    for (let i = 0; i < n; i++) this.#vfs.push(new VirtualFunction(this.index, i, this.vfAddress(i), clock, this.eswitch, () => this.uplink.linkUp, this.txArbiter));
    this.eswitch.setPorts([this.uplink, this.pf, ...this.#vfs]);
  }

  /** Clears VF Enable: every VF disappears with its configuration and counters. */
  disableVfs(): void {
    for (const vf of this.#vfs) vf.destroy();
    this.#vfs = [];
    this.eswitch.setPorts([this.uplink, this.pf]);
  }

  /** All ports of the eswitch, uplink first. */
  get ports(): readonly EswitchPort[] {
    return this.eswitch.ports;
  }

  /** Per-port counters, keyed by port name (p0, pf0, pf0vf3 ...). */
  stats(): Record<string, PortStats> {
    const out: Record<string, PortStats> = {};
    for (const p of this.eswitch.ports) out[p.name] = p.counters.snapshot();
    return out;
  }
}

/**
 * The emulated SR-IOV NIC, shaped like a ConnectX-6 Dx: one or two uplink ports, one PF per port
 * at PCI function 0 and 1 of one device, each PF with up to TotalVFs VFs whose routing IDs follow
 * both PFs (First VF Offset and Stride chosen as mlx5 firmware lays them out: PF 0's VFs right
 * after the PFs, PF 1's after PF 0's TotalVFs), and a legacy eswitch per port.
 */
export class Nic {
  readonly clock: VirtualClock;
  readonly ports: readonly NicPort[];
  readonly linkSpeedMbps: number;

  constructor(options: NicOptions) {
    this.clock = options.clock;
    const nPorts = options.ports ?? 1;
    const totalVfs = options.totalVfs ?? DEFAULT_TOTAL_VFS;
    const domain = options.domain ?? 0;
    const bus = options.bus ?? 0x3b;
    this.linkSpeedMbps = options.linkSpeedMbps ?? 100_000;
    if (nPorts !== 1 && nPorts !== 2) throw new NicError("NIC_BAD_CONFIG", `a NIC has 1 or 2 ports, not ${nPorts}`, { ports: nPorts });
    // All functions must fit in the 256 functions one bus number gives an ARI device.
    if (!Number.isInteger(totalVfs) || totalVfs < 1 || nPorts * (totalVfs + 1) > 256) {
      throw new NicError("NIC_BAD_CONFIG", `TotalVFs ${totalVfs} with ${nPorts} port(s) does not fit one bus (1..${Math.floor(256 / nPorts) - 1})`, { totalVfs, ports: nPorts });
    }
    if (!Number.isInteger(bus) || bus < 0 || bus > 0xff || !Number.isInteger(domain) || domain < 0 || domain > 0xffff) {
      throw new NicError("NIC_BAD_CONFIG", "PCI domain or bus out of range", { domain, bus });
    }
    if (!Number.isInteger(this.linkSpeedMbps) || this.linkSpeedMbps < 1) throw new NicError("NIC_BAD_CONFIG", "link speed must be a positive integer (Mbit/s)", { linkSpeedMbps: this.linkSpeedMbps });
    let base: MacAddress;
    try {
      base = MacAddress.parse(options.baseMac ?? `b8:ce:f6:${bus.toString(16).padStart(2, "0")}:00:00`);
    } catch (e) {
      throw new NicError("NIC_BAD_CONFIG", `bad base MAC ${String(options.baseMac)}`, { cause: e });
    }
    if (base.isMulticast || base.isZero) throw new NicError("NIC_BAD_CONFIG", "base MAC must be a non-zero unicast address", { baseMac: options.baseMac });
    const ports: NicPort[] = [];
    for (let p = 0; p < nPorts; p++) {
      const offset = nPorts - p + p * totalVfs;
      ports.push(new NicPort(this, p, totalVfs, offset, 1, new PciAddress(domain, (bus << 8) | p), base.key + p));
    }
    this.ports = ports;
  }

  port(i: number): NicPort {
    const p = this.ports[i];
    if (p === undefined) throw new NicError("NIC_BAD_ARGUMENT", `port ${i} does not exist (${this.ports.length} ports)`, { port: i });
    return p;
  }

  /** The VF at a PCI address, if one is enabled there. */
  findVf(address: string): VirtualFunction | undefined {
    for (const p of this.ports) for (const vf of p.vfs) if (vf.pciAddress.toString() === address) return vf;
    return undefined;
  }
}

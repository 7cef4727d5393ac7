import { PciError } from "./errors.js";
import type { PciEffect, PciFunction } from "./function.js";
import { PCI_CAP_ID_EXP } from "./regs.js";

/** Device/Port Type of the PCI Express Capabilities register (PCIe Base §7.5.3.2). */
export type PcieDeviceType = "endpoint" | "legacy-endpoint" | "rc-endpoint" | "root-port" | "upstream-port" | "downstream-port";

const typeCode: Record<PcieDeviceType, number> = {
  endpoint: 0x0,
  "legacy-endpoint": 0x1,
  "root-port": 0x4,
  "upstream-port": 0x5,
  "downstream-port": 0x6,
  "rc-endpoint": 0x9,
};

export interface PciExpressOptions {
  readonly type: PcieDeviceType;
  /** Function Level Reset Capability (Device Capabilities bit 28); endpoints only. */
  readonly flr?: boolean;
  /** Max_Payload_Size Supported in bytes, 128..4096; default 256. */
  readonly maxPayloadSupported?: number;
  /** Physical slot number of a root or downstream port: sets Slot Implemented. */
  readonly slot?: number;
  /** ARI Forwarding Supported (Device Capabilities 2 bit 5); ports only. */
  readonly ariForwarding?: boolean;
  readonly at?: number;
}

/** Size of a version 2 PCI Express capability (PCI_CAP_EXP_ENDPOINT_SIZEOF_V2). */
export const PCI_EXP_SIZEOF_V2 = 0x3c;

// Register offsets inside the capability (pci_regs.h PCI_EXP_*).
export const PCI_EXP_FLAGS = 0x02;
export const PCI_EXP_DEVCAP = 0x04;
export const PCI_EXP_DEVCTL = 0x08;
export const PCI_EXP_DEVSTA = 0x0a;
export const PCI_EXP_LNKCAP = 0x0c;
export const PCI_EXP_LNKCTL = 0x10;
export const PCI_EXP_LNKSTA = 0x12;
export const PCI_EXP_SLTCAP = 0x14;
export const PCI_EXP_SLTCTL = 0x18;
export const PCI_EXP_SLTSTA = 0x1a;
export const PCI_EXP_RTCTL = 0x1c;
export const PCI_EXP_RTSTA = 0x20;
export const PCI_EXP_DEVCAP2 = 0x24;
export const PCI_EXP_DEVCTL2 = 0x28;
export const PCI_EXP_LNKCAP2 = 0x2c;
export const PCI_EXP_LNKCTL2 = 0x30;

export const PCI_EXP_DEVCAP_FLR = 0x1000_0000;
export const PCI_EXP_DEVCTL_BCR_FLR = 0x8000;
export const PCI_EXP_DEVCAP2_ARI = 0x20;
export const PCI_EXP_DEVCTL2_ARI = 0x20;

/**
 * The PCI Express Capability structure, version 2 (PCIe Base §7.5.3), for an endpoint, an
 * RC-integrated endpoint or a root/switch port. A link of one lane at 2.5 GT/s, always up.
 * Writing Initiate Function Level Reset on an FLR-capable endpoint resets the function
 * (§6.6.2) and returns a "function-reset" effect with whatever the reset implies.
 */
export class PciExpressCapability {
  readonly fn: PciFunction;
  readonly offset: number;
  readonly type: PcieDeviceType;
  readonly flrCapable: boolean;
  readonly #mpsCode: number;
  #devctl = 0x2810;

  constructor(fn: PciFunction, opts: PciExpressOptions) {
    if (!fn.express) throw new PciError("PCI_NOT_EXPRESS", "the PCI Express capability needs a 4096-byte configuration space");
    if (!(opts.type in typeCode)) throw new PciError("PCI_BAD_ARGUMENT", `unknown PCIe device type ${String(opts.type)}`);
    const isPort = opts.type === "root-port" || opts.type === "downstream-port" || opts.type === "upstream-port";
    if (isPort !== (fn.headerType === 1)) {
      throw new PciError("PCI_BAD_ARGUMENT", `a ${opts.type} needs a type ${isPort ? 1 : 0} header`);
    }
    if (opts.flr === true && isPort) throw new PciError("PCI_BAD_ARGUMENT", "FLR is an endpoint capability (PCIe Base §7.5.3.3)");
    if (opts.slot !== undefined && (opts.type !== "root-port" && opts.type !== "downstream-port")) {
      throw new PciError("PCI_BAD_ARGUMENT", "only a root or downstream port implements a slot");
    }
    if (opts.slot !== undefined && (!Number.isInteger(opts.slot) || opts.slot < 0 || opts.slot > 0x1fff)) {
      throw new PciError("PCI_BAD_ARGUMENT", `slot number ${opts.slot} is not 0..8191`);
    }
    const mps = opts.maxPayloadSupported ?? 256;
    const mpsCode = Math.log2(mps) - 7;
    if (!Number.isInteger(mpsCode) || mpsCode < 0 || mpsCode > 5) throw new PciError("PCI_BAD_ARGUMENT", `max payload ${mps} is not 128..4096`);
    this.fn = fn;
    this.type = opts.type;
    this.flrCapable = opts.flr === true;
    this.#mpsCode = mpsCode;
    const o = (this.offset = fn.addCapability(PCI_CAP_ID_EXP, PCI_EXP_SIZEOF_V2, opts.at));
    const c = fn.config;
    const isRoot = opts.type === "root-port";
    const hasLink = opts.type !== "rc-endpoint";
    const isDown = isRoot || opts.type === "downstream-port";

    c.setU16(o + PCI_EXP_FLAGS, 2 | (typeCode[opts.type] << 4) | (opts.slot !== undefined ? 0x100 : 0));
    // Device Capabilities: MPS supported, 8-bit tags, unlimited L0s/L1 latency for endpoints,
    // role-based error reporting, FLR.
    const endpoint = !isPort;
    c.setU32(o + PCI_EXP_DEVCAP, (mpsCode | 0x20 | (endpoint ? (7 << 6) | (7 << 9) : 0) | 0x8000 | (this.flrCapable ? PCI_EXP_DEVCAP_FLR : 0)) >>> 0);
    // Device Control: reset MPS 128 B, MRRS 512 B, Relaxed Ordering and No Snoop enabled (§7.5.3.4).
    c.setU16(o + PCI_EXP_DEVCTL, 0x2810);
    c.setWmask(o + PCI_EXP_DEVCTL, 2, 0x79ff | (this.flrCapable ? PCI_EXP_DEVCTL_BCR_FLR : 0));
    // Device Status: the four error-detected bits are RW1C (§7.5.3.5).
    c.setW1c(o + PCI_EXP_DEVSTA, 2, 0x000f);
    if (hasLink) {
      // Link: x1 at 2.5 GT/s; a downstream port reports Data Link Layer Link Active (§7.5.3.6, .8).
      c.setU32(o + PCI_EXP_LNKCAP, 0x11 | (isDown ? 0x10_0000 : 0));
      c.setWmask(o + PCI_EXP_LNKCTL, 2, isPort ? 0x0cdb : 0x00cb);
      c.setU16(o + PCI_EXP_LNKSTA, 0x0011 | (isDown ? 0x2000 : 0));
      if (isPort) c.setW1c(o + PCI_EXP_LNKSTA, 2, 0xc000);
      c.setU32(o + PCI_EXP_LNKCAP2, 0x2);
      c.setU16(o + PCI_EXP_LNKCTL2, 0x1);
      c.setWmask(o + PCI_EXP_LNKCTL2, 2, 0x000f);
    }
    if (opts.slot !== undefined) {
      c.setU32(o + PCI_EXP_SLTCAP, (opts.slot << 19) >>> 0);
      c.setU16(o + PCI_EXP_SLTSTA, 0x0040); // Presence Detect State: a card is in the slot
      c.setW1c(o + PCI_EXP_SLTSTA, 2, 0x011f);
    }
    if (isRoot) {
      c.setWmask(o + PCI_EXP_RTCTL, 2, 0x000f);
      c.setW1c(o + PCI_EXP_RTSTA, 4, 0x0001_0000);
    }
    const ari = isDown && opts.ariForwarding === true;
    c.setU32(o + PCI_EXP_DEVCAP2, 0x10 | (ari ? PCI_EXP_DEVCAP2_ARI : 0));
    c.setWmask(o + PCI_EXP_DEVCTL2, 2, 0x10 | (ari ? PCI_EXP_DEVCTL2_ARI : 0));

    fn.onConfigWrite(o + PCI_EXP_DEVCTL, 2, () => this.#afterDevctl());
    fn.onReset(() => {
      this.#devctl = this.deviceControl;
      return undefined;
    });
    fn.attach(this);
  }

  #afterDevctl(): readonly PciEffect[] | undefined {
    const c = this.fn.config;
    const at = this.offset + PCI_EXP_DEVCTL;
    let v = c.read(at, 2);
    // Max_Payload_Size above what Device Capabilities advertises, and the reserved encodings
    // 6 and 7 of Max_Read_Request_Size, are undefined (§7.5.3.4): such a field write is discarded.
    if (((v >> 5) & 7) > this.#mpsCode) v = (v & ~0x00e0) | (this.#devctl & 0x00e0);
    if (((v >> 12) & 7) > 5) v = (v & ~0x7000) | (this.#devctl & 0x7000);
    if (v !== c.read(at, 2)) c.poke(at, 2, v);
    this.#devctl = v & ~PCI_EXP_DEVCTL_BCR_FLR;
    if ((v & PCI_EXP_DEVCTL_BCR_FLR) === 0) return undefined;
    // Initiate FLR always reads 0 (§7.5.3.4); the reset restores every register anyway.
    c.poke(at, 2, v & ~PCI_EXP_DEVCTL_BCR_FLR);
    return [{ kind: "function-reset", reason: "flr" }, ...this.fn.reset()];
  }

  get deviceControl(): number {
    return this.fn.config.read(this.offset + PCI_EXP_DEVCTL, 2);
  }
  /** Max_Payload_Size in bytes as programmed in Device Control. */
  get maxPayloadSize(): number {
    return 128 << ((this.deviceControl >> 5) & 7);
  }
  /** ARI Forwarding Enable of a port (Device Control 2 bit 5): functions 8..255 reachable below. */
  get ariForwardingEnabled(): boolean {
    return (this.fn.config.read(this.offset + PCI_EXP_DEVCTL2, 2) & PCI_EXP_DEVCTL2_ARI) !== 0;
  }
}

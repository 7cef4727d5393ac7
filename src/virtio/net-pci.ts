/**
 * virtio-net over the modern PCI transport: the function the hypervisor exposes as the vPF (with
 * an SR-IOV capability it adds itself) and as each vVF.
 *
 * PCI identity (virtio 1.3 §4.1.2): vendor 0x1AF4, device 0x1040 + 1 = 0x1041 (modern-only),
 * revision 1, class 0x020000 (Ethernet controller), subsystem 0x1AF4:0x1100, PCI Express
 * endpoint with FLR. One 64-bit memory BAR (default BAR 4, as QEMU) holds the virtio
 * structures and the MSI-X table (layout in pci-transport.ts).
 */
import type { GuestMemory } from "../memory/index.js";
import { AriCapability, MsixCapability, PciExpressCapability, PciFunction, SriovCapability, type BarSpec, type SriovOptions } from "../pci/index.js";
import { VIRTIO_ID_NET, VIRTIO_PCI_MODERN_DEVICE_ID_BASE, VIRTIO_PCI_VENDOR_ID } from "./constants.js";
import { VirtioNet, type VirtioNetOptions } from "./net.js";
import {
  VIRTIO_PCI_BAR_SIZE,
  VIRTIO_PCI_MAX_VECTORS,
  VIRTIO_PCI_MSIX_PBA_OFFSET,
  VIRTIO_PCI_MSIX_TABLE_OFFSET,
  VirtioPciTransport,
  VirtioTransportError,
} from "./pci-transport.js";

export const VIRTIO_NET_PCI_DEVICE_ID = VIRTIO_PCI_MODERN_DEVICE_ID_BASE + VIRTIO_ID_NET;
export const VIRTIO_NET_PCI_CLASS = 0x020000;
export const VIRTIO_PCI_SUBSYSTEM_ID = 0x1100;
/** BAR 4 holds the virtio structures by default (as QEMU's virtio-pci). */
export const VIRTIO_PCI_DEFAULT_BAR = 4;
/** The BAR a virtio-net function needs (also what a PF's SR-IOV capability must give its VFs). */
export const VIRTIO_PCI_BAR_SPEC: BarSpec = { kind: "mem64", size: VIRTIO_PCI_BAR_SIZE, prefetchable: false };

export interface VirtioNetPciOptions extends VirtioNetOptions {
  readonly memory: GuestMemory;
  /** BAR index for the virtio structures (default 4). */
  readonly bar?: number;
  /** Offer VIRTIO_F_ADMIN_VQ with one admin queue (the vPF). */
  readonly adminQueue?: boolean;
  /** Offer VIRTIO_RING_F_EVENT_IDX / VIRTIO_RING_F_INDIRECT_DESC (default both). */
  readonly eventIdx?: boolean;
  readonly indirect?: boolean;
  /** Header Type multifunction bit (an SR-IOV PF at function 0 usually sets it). */
  readonly multifunction?: boolean;
  /**
   * Carry an ARI and an SR-IOV capability (the vPF); the VF BAR at the same index as the virtio BAR
   * is VIRTIO_PCI_BAR_SPEC, so each VF can become a virtio-net function with attachVirtioNet.
   * VIRTIO_F_SR_IOV is offered exactly when the capability exists.
   */
  readonly sriov?: Omit<SriovOptions, "vfBars">;
}

export interface VirtioNetPci {
  readonly fn: PciFunction;
  readonly net: VirtioNet;
  readonly transport: VirtioPciTransport;
  readonly msix: MsixCapability;
  readonly express: PciExpressCapability | undefined;
  readonly sriov?: SriovCapability;
}

/** Creates a virtio-net PCI function: PCIe endpoint, MSI-X, virtio capabilities, BAR. */
export function createVirtioNetPci(opts: VirtioNetPciOptions): VirtioNetPci {
  const fn = new PciFunction({
    vendorId: VIRTIO_PCI_VENDOR_ID,
    deviceId: VIRTIO_NET_PCI_DEVICE_ID,
    classCode: VIRTIO_NET_PCI_CLASS,
    revision: 1,
    subsystemVendorId: VIRTIO_PCI_VENDOR_ID,
    subsystemId: VIRTIO_PCI_SUBSYSTEM_ID,
    express: true,
    multifunction: opts.multifunction ?? false,
  });
  const bar = opts.bar ?? VIRTIO_PCI_DEFAULT_BAR;
  fn.defineBar(bar, VIRTIO_PCI_BAR_SPEC);
  const express = new PciExpressCapability(fn, { type: "endpoint", flr: true });
  const made = attachVirtioNet(fn, opts);
  if (opts.sriov === undefined) return { ...made, express };
  new AriCapability(fn);
  const sriov = new SriovCapability(fn, { ...opts.sriov, vfBars: [{ index: bar, ...VIRTIO_PCI_BAR_SPEC }] });
  return { ...made, express, sriov };
}

/**
 * Makes an existing function a virtio-net device: for a VF that SriovCapability.vfFunction
 * created (its BAR is the PF's VF BAR, which must be a memory BAR of at least
 * VIRTIO_PCI_BAR_SIZE bytes). Adds MSI-X and the virtio capabilities, and a PCI Express
 * capability unless the function has one. Throws VIRTIO_BAD_BAR when the BAR does not fit.
 */
export function attachVirtioNet(fn: PciFunction, opts: VirtioNetPciOptions): Omit<VirtioNetPci, "express"> & { express: PciExpressCapability | undefined } {
  const bar = opts.bar ?? VIRTIO_PCI_DEFAULT_BAR;
  const spec = fn.barSpec(bar);
  if (spec === undefined || spec.kind === "io" || spec.size < VIRTIO_PCI_BAR_SIZE) {
    throw new VirtioTransportError("VIRTIO_BAD_BAR", `BAR ${bar} must be a memory BAR of at least ${VIRTIO_PCI_BAR_SIZE} bytes`, { details: { bar } });
  }
  let express: PciExpressCapability | undefined;
  if (fn.findCapability(0x10) === undefined) express = new PciExpressCapability(fn, { type: "endpoint", flr: true });
  const net = new VirtioNet(opts);
  const adminQueue = opts.adminQueue ?? false;
  // One vector per queue, one for configuration changes, one for the admin queue.
  const vectors = Math.min(VIRTIO_PCI_MAX_VECTORS, net.numQueues + 1 + (adminQueue ? 1 : 0));
  const msix = new MsixCapability(fn, { vectors, tableBar: bar, tableOffset: VIRTIO_PCI_MSIX_TABLE_OFFSET, pbaBar: bar, pbaOffset: VIRTIO_PCI_MSIX_PBA_OFFSET });
  const transport = new VirtioPciTransport({
    fn, device: net, memory: opts.memory, bar, msix, adminQueue,
    ...(opts.eventIdx !== undefined ? { eventIdx: opts.eventIdx } : {}),
    ...(opts.indirect !== undefined ? { indirect: opts.indirect } : {}),
  });
  return { fn, net, transport, msix, express };
}

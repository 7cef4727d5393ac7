import {
  PCI_PRIMARY_BUS,
  PCI_SECONDARY_BUS,
  PCI_SUBORDINATE_BUS,
  PciExpressCapability,
  PciFunction,
} from "../pci/index.js";

/** PCI Express Device Control 2 (PCIe Base §7.5.3.16) offset in the capability, and ARI Forwarding Enable. */
const PCI_EXP_DEVCTL2 = 0x28;
const PCI_EXP_DEVCTL2_ARI = 0x20;

/** QEMU's pcie-root-port identity (Red Hat, Inc.), so guests bind pcieport as with QEMU q35. */
export const ROOT_PORT_VENDOR_ID = 0x1b36;
export const ROOT_PORT_DEVICE_ID = 0x000c;
/** PCI-to-PCI bridge, normal decode (class 06 04 00). */
export const ROOT_PORT_CLASS = 0x060400;

/**
 * One PCI Express root port (a type 1 header with a PCIe capability of type Root Port), one per
 * device the VM carries, so each device sits alone at device 0 of its own bus: only there can it
 * use ARI's 8-bit function numbers (PCIe Base §6.13), which 255 VFs need.
 *
 * The type 1 header comes from src/pci's PciFunction (headerType 1); the vmm programs what a
 * firmware would before the OS runs: primary/secondary/subordinate bus numbers, and ARI
 * Forwarding Enable in Device Control 2 (the port advertises ARI Forwarding Supported). Linux
 * re-evaluates ARI forwarding per device (pci_configure_ari) and keeps it on for an ARI device.
 */
export class RootPort {
  readonly fn: PciFunction;
  readonly express: PciExpressCapability;
  readonly slot: number;
  readonly secondaryBus: number;

  constructor(slot: number, secondaryBus: number) {
    this.slot = slot;
    this.secondaryBus = secondaryBus;
    this.fn = new PciFunction({
      vendorId: ROOT_PORT_VENDOR_ID,
      deviceId: ROOT_PORT_DEVICE_ID,
      classCode: ROOT_PORT_CLASS,
      revision: 0,
      express: true,
      headerType: 1,
      interruptPin: 0,
    });
    this.express = new PciExpressCapability(this.fn, { type: "root-port", slot, ariForwarding: true });
    this.programFirmwareState();
  }

  /**
   * What firmware sets at boot (and again after a system reset): bus numbers and ARI forwarding.
   * Written as register contents, not as power-on values, so a reset of the port clears them as
   * hardware would until the firmware runs again.
   */
  programFirmwareState(): void {
    const c = this.fn.config;
    c.poke(PCI_PRIMARY_BUS, 1, 0);
    c.poke(PCI_SECONDARY_BUS, 1, this.secondaryBus);
    c.poke(PCI_SUBORDINATE_BUS, 1, this.secondaryBus);
    const at = this.express.offset + PCI_EXP_DEVCTL2;
    c.poke(at, 2, c.read(at, 2) | PCI_EXP_DEVCTL2_ARI);
  }
}

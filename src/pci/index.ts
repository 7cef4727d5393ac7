export type { AccessWidth, PciPlatform } from "./platform.js";
export { PciError } from "./errors.js";
export type { PciErrorCode } from "./errors.js";
export { ConfigSpace, CONFIG_SPACE_SIZE, EXPRESS_CONFIG_SPACE_SIZE, allOnes } from "./config-space.js";
export { PciFunction, barEncoding, decodeBarAddress } from "./function.js";
export type {
  PciEffect, PowerState, BarKind, BarSpec, BarRegionHandler, MsiSink, PciFunctionOptions, VfParent, VfParentLink,
  CapabilityInfo, ConfigReadHook,
} from "./function.js";
export { PciExpressCapability, PCI_EXP_SIZEOF_V2 } from "./express.js";
export type { PcieDeviceType, PciExpressOptions } from "./express.js";
export { MsiCapability } from "./msi.js";
export type { MsiOptions, MsiOutcome } from "./msi.js";
export { MsixCapability } from "./msix.js";
export type { MsixOptions, MsixOutcome } from "./msix.js";
export { PowerManagementCapability } from "./pm.js";
export type { PowerManagementOptions } from "./pm.js";
export { AriCapability } from "./ari.js";
export {
  SriovCapability, SRIOV_SUP_PGSIZE_MINREQ, PCI_EXT_CAP_SRIOV_SIZEOF, PCI_SRIOV_CTRL, PCI_SRIOV_NUM_VF, PCI_SRIOV_TOTAL_VF,
  PCI_SRIOV_INITIAL_VF, PCI_SRIOV_VF_OFFSET, PCI_SRIOV_VF_STRIDE, PCI_SRIOV_VF_DID, PCI_SRIOV_SUP_PGSIZE,
  PCI_SRIOV_SYS_PGSIZE, PCI_SRIOV_BAR, PCI_SRIOV_STATUS, PCI_SRIOV_FUNC_LINK, PCI_SRIOV_CTRL_VFE, PCI_SRIOV_CTRL_MSE,
  PCI_SRIOV_CTRL_ARI,
} from "./sriov.js";
export type { SriovOptions, SriovLayout, VfBarOptions, VfFunctionOptions } from "./sriov.js";
export { PciBus, routingId, ridBus, ridDevfn, devfnDevice, devfnFunction, formatBdf } from "./bus.js";
export type { PciAddress, PciLocation, EffectHandler } from "./bus.js";
export { EcamWindow, Conf1Ports, CONF1_ADDRESS_PORT, CONF1_DATA_PORT } from "./access.js";
export { lspciDump, lspciAddress, lspciDumpBus } from "./lspci.js";
export { makeExamplePf } from "./fixtures.js";
export type { LspciAddress } from "./lspci.js";
export * from "./regs.js";

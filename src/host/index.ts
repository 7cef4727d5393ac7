export { Host, MELLANOX_VENDOR_ID, parseKernelU16 } from "./host.js";
export type { VfInfo, LinkVfInfo, VfSetRequest, EswitchInfo, MgmtdevInfo, VdpaDevInfo, VdpaConfigInfo, VdpaDevAddRequest } from "./host.js";
export { VhostVdpaHandle, VIRTIO_ID_NET } from "./vhost.js";
export { formatVfLine, formatIpLinkShow, formatEswitchShow, formatMgmtdevShow, formatVdpaDevShow, formatVdpaConfigShow } from "./text.js";
export { runCommand, HostUsageError } from "./shell.js";
export type { CommandResult } from "./shell.js";
export { VirtioNetDouble } from "./virtio-net-double.js";
export type { VhostLike, VirtioNetDoubleOptions } from "./virtio-net-double.js";
export { rtnlVfInfo } from "./rtnl.js";

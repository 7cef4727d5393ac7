/**
 * virtio numbers, named as in Linux include/uapi/linux/virtio_config.h, virtio_pci.h,
 * virtio_ring.h, virtio_net.h and virtio_ids.h (virtio 1.3 §2.1, §4.1, §5.1, §6).
 */

// Device status (§2.1).
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
export const VIRTIO_CONFIG_S_DRIVER = 2;
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
export const VIRTIO_CONFIG_S_FAILED = 0x80;

// Reserved (transport / ring) feature bits (§6).
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;
export const VIRTIO_F_ACCESS_PLATFORM = 33;
export const VIRTIO_F_RING_PACKED = 34;
export const VIRTIO_F_IN_ORDER = 35;
export const VIRTIO_F_ORDER_PLATFORM = 36;
export const VIRTIO_F_SR_IOV = 37;
export const VIRTIO_F_NOTIFICATION_DATA = 38;
export const VIRTIO_F_NOTIF_CONFIG_DATA = 39;
export const VIRTIO_F_RING_RESET = 40;
export const VIRTIO_F_ADMIN_VQ = 41;

/** 1n << BigInt(bit). */
export function bit(n: number): bigint {
  return 1n << BigInt(n);
}

// Device IDs (§5): virtio device type, and the modern PCI device ID 0x1040 + type (§4.1.2).
export const VIRTIO_ID_NET = 1;
export const VIRTIO_PCI_VENDOR_ID = 0x1af4;
export const VIRTIO_PCI_MODERN_DEVICE_ID_BASE = 0x1040;

// Virtio PCI capability types (§4.1.4).
export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;
export const VIRTIO_PCI_CAP_PCI_CFG = 5;

/** "No vector" for config_msix_vector and queue_msix_vector (§4.1.5.1.2). */
export const VIRTIO_MSI_NO_VECTOR = 0xffff;

// ISR status bits (§4.1.4.5).
export const VIRTIO_PCI_ISR_QUEUE = 1;
export const VIRTIO_PCI_ISR_CONFIG = 2;

// struct virtio_pci_common_cfg offsets (§4.1.4.3; Linux VIRTIO_PCI_COMMON_*).
export const COMMON_DFSELECT = 0x00;
export const COMMON_DF = 0x04;
export const COMMON_GFSELECT = 0x08;
export const COMMON_GF = 0x0c;
export const COMMON_MSIX = 0x10;
export const COMMON_NUMQ = 0x12;
export const COMMON_STATUS = 0x14;
export const COMMON_CFGGENERATION = 0x15;
export const COMMON_Q_SELECT = 0x16;
export const COMMON_Q_SIZE = 0x18;
export const COMMON_Q_MSIX = 0x1a;
export const COMMON_Q_ENABLE = 0x1c;
export const COMMON_Q_NOFF = 0x1e;
export const COMMON_Q_DESCLO = 0x20;
export const COMMON_Q_DESCHI = 0x24;
export const COMMON_Q_AVAILLO = 0x28;
export const COMMON_Q_AVAILHI = 0x2c;
export const COMMON_Q_USEDLO = 0x30;
export const COMMON_Q_USEDHI = 0x34;
export const COMMON_Q_NDATA = 0x38;
export const COMMON_Q_RESET = 0x3a;
export const COMMON_ADM_Q_IDX = 0x3c;
export const COMMON_ADM_Q_NUM = 0x3e;
export const COMMON_CFG_SIZE = 0x40;

// virtio-net feature bits (§5.1.3).
export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_GUEST_CSUM = 1;
export const VIRTIO_NET_F_MTU = 3;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_F_CTRL_VQ = 17;
export const VIRTIO_NET_F_CTRL_RX = 18;
export const VIRTIO_NET_F_CTRL_VLAN = 19;
export const VIRTIO_NET_F_CTRL_RX_EXTRA = 20;
export const VIRTIO_NET_F_GUEST_ANNOUNCE = 21;
export const VIRTIO_NET_F_MQ = 22;
export const VIRTIO_NET_F_CTRL_MAC_ADDR = 23;
export const VIRTIO_NET_F_SPEED_DUPLEX = 63;

// virtio_net_config.status (§5.1.4).
export const VIRTIO_NET_S_LINK_UP = 1;
export const VIRTIO_NET_S_ANNOUNCE = 2;

// struct virtio_net_config offsets (§5.1.4).
export const NET_CFG_MAC = 0;
export const NET_CFG_STATUS = 6;
export const NET_CFG_MAX_VQ_PAIRS = 8;
export const NET_CFG_MTU = 10;
/** mac, status, max_virtqueue_pairs, mtu; speed/duplex (VIRTIO_NET_F_SPEED_DUPLEX) are not offered. */
export const NET_CFG_SIZE = 12;

/** struct virtio_net_hdr_v1 (§5.1.6): 12 bytes on every frame with VERSION_1. */
export const VIRTIO_NET_HDR_LEN = 12;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_GSO_NONE = 0;

// Control virtqueue (§5.1.6.5).
export const VIRTIO_NET_OK = 0;
export const VIRTIO_NET_ERR = 1;
export const VIRTIO_NET_CTRL_RX = 0;
export const VIRTIO_NET_CTRL_RX_PROMISC = 0;
export const VIRTIO_NET_CTRL_RX_ALLMULTI = 1;
export const VIRTIO_NET_CTRL_RX_ALLUNI = 2;
export const VIRTIO_NET_CTRL_RX_NOMULTI = 3;
export const VIRTIO_NET_CTRL_RX_NOUNI = 4;
export const VIRTIO_NET_CTRL_RX_NOBCAST = 5;
export const VIRTIO_NET_CTRL_MAC = 1;
export const VIRTIO_NET_CTRL_MAC_TABLE_SET = 0;
export const VIRTIO_NET_CTRL_MAC_ADDR_SET = 1;
export const VIRTIO_NET_CTRL_VLAN = 2;
export const VIRTIO_NET_CTRL_VLAN_ADD = 0;
export const VIRTIO_NET_CTRL_VLAN_DEL = 1;
export const VIRTIO_NET_CTRL_ANNOUNCE = 3;
export const VIRTIO_NET_CTRL_ANNOUNCE_ACK = 0;
export const VIRTIO_NET_CTRL_MQ = 4;
export const VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET = 0;
export const VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN = 1;
export const VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MAX = 0x8000;

// Admin commands (§2.12.1; Linux virtio_pci.h).
export const VIRTIO_ADMIN_CMD_LIST_QUERY = 0x0;
export const VIRTIO_ADMIN_CMD_LIST_USE = 0x1;
export const VIRTIO_ADMIN_GROUP_TYPE_SRIOV = 0x1;
export const VIRTIO_ADMIN_STATUS_OK = 0;
export const VIRTIO_ADMIN_STATUS_EAGAIN = 11;
export const VIRTIO_ADMIN_STATUS_ENOMEM = 12;
export const VIRTIO_ADMIN_STATUS_EINVAL = 22;
export const VIRTIO_ADMIN_STATUS_Q_OK = 0x0;
export const VIRTIO_ADMIN_STATUS_Q_INVALID_COMMAND = 0x1;
export const VIRTIO_ADMIN_STATUS_Q_INVALID_OPCODE = 0x2;
export const VIRTIO_ADMIN_STATUS_Q_INVALID_FIELD = 0x3;
export const VIRTIO_ADMIN_STATUS_Q_INVALID_GROUP = 0x4;
export const VIRTIO_ADMIN_STATUS_Q_INVALID_MEMBER = 0x5;
export const VIRTIO_ADMIN_STATUS_Q_NORESOURCE = 0x6;
export const VIRTIO_ADMIN_STATUS_Q_TRYAGAIN = 0x7;
/** opcode(2) group_type(2) reserved1(12) group_member_id(8). */
export const ADMIN_CMD_HDR_LEN = 24;
/** status(2) status_qualifier(2) reserved2(4). */
export const ADMIN_CMD_STATUS_LEN = 8;

import { needBytes, WireError } from "./errors.js";
import {
  attrType,
  beginNlMessage,
  endNlMessage,
  nla,
  nlaGet,
  parseAttrs,
  NlmF,
  type NlAttr,
  type NlAttrSpec,
  type NlMessage,
} from "./netlink.js";

/**
 * Generic netlink (include/uapi/linux/genetlink.h): after nlmsghdr, a 4-byte genlmsghdr
 * {u8 cmd; u8 version; u16 reserved}, then attributes. nlmsg_type is the family id; the
 * controller family (GENL_ID_CTRL) resolves names to ids with CTRL_CMD_GETFAMILY.
 */
export const GENL_HDRLEN = 4;
export const GENL_ID_CTRL = 0x10;

export const CtrlCmd = { NEWFAMILY: 1, DELFAMILY: 2, GETFAMILY: 3 } as const;
export const CtrlAttr = { FAMILY_ID: 1, FAMILY_NAME: 2, VERSION: 3, HDRSIZE: 4, MAXATTR: 5, OPS: 6, MCAST_GROUPS: 7 } as const;
export const CtrlAttrOp = { ID: 1, FLAGS: 2 } as const;
export const CtrlAttrMcastGrp = { NAME: 1, ID: 2 } as const;
/** Per-operation flags in CTRL_ATTR_OP_FLAGS. */
export const GenlOpFlag = { ADMIN_PERM: 0x01, CMD_CAP_DO: 0x02, CMD_CAP_DUMP: 0x04, CMD_CAP_HASPOL: 0x08, UNS_ADMIN_PERM: 0x10 } as const;

/** The vdpa family (include/uapi/linux/vdpa.h, netlink-vf.md §12): name "vdpa", version 1. */
export const VDPA_GENL_NAME = "vdpa";
export const VDPA_GENL_VERSION = 1;
export const VdpaCmd = {
  MGMTDEV_NEW: 1,
  MGMTDEV_GET: 2,
  DEV_NEW: 3,
  DEV_DEL: 4,
  DEV_GET: 5,
  DEV_CONFIG_GET: 6,
  DEV_VSTATS_GET: 7,
} as const;
export const VdpaAttr = {
  PAD: 0,
  MGMTDEV_BUS_NAME: 1,
  MGMTDEV_DEV_NAME: 2,
  MGMTDEV_SUPPORTED_CLASSES: 3,
  DEV_NAME: 4,
  DEV_ID: 5,
  DEV_VENDOR_ID: 6,
  DEV_MAX_VQS: 7,
  DEV_MAX_VQ_SIZE: 8,
  DEV_MIN_VQ_SIZE: 9,
  DEV_NET_CFG_MACADDR: 10,
  DEV_NET_STATUS: 11,
  DEV_NET_CFG_MAX_VQP: 12,
  DEV_NET_CFG_MTU: 13,
  DEV_NEGOTIATED_FEATURES: 14,
  DEV_MGMTDEV_MAX_VQS: 15,
  DEV_SUPPORTED_FEATURES: 16,
  DEV_QUEUE_INDEX: 17,
  DEV_VENDOR_ATTR_NAME: 18,
  DEV_VENDOR_ATTR_VALUE: 19,
  DEV_FEATURES: 20,
  VDPA_DEV_SUPPORTED_FEATURES: 21,
} as const;

/** A generic netlink message: nlmsghdr fields (type = family id), genlmsghdr, attributes. */
export interface GenlRepr {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  cmd: number;
  version: number;
  attrs: NlAttr[];
}

export const GenlRepr = {
  parse(m: NlMessage): GenlRepr {
    needBytes("genlmsghdr", m.payload.length, GENL_HDRLEN);
    return { type: m.type, flags: m.flags, seq: m.seq, pid: m.pid, cmd: m.payload[0]!, version: m.payload[1]!, attrs: parseAttrs(m.payload.subarray(GENL_HDRLEN)) };
  },
  /** Emits with arbitrary attribute specs (nests, aligned u64s); the parsed form has them raw. */
  emit(r: Omit<GenlRepr, "attrs"> & { attrs: readonly NlAttrSpec[] }): Uint8Array {
    if (!Number.isInteger(r.cmd) || r.cmd < 0 || r.cmd > 255 || !Number.isInteger(r.version) || r.version < 0 || r.version > 255) {
      throw new WireError("WIRE_BAD_VALUE", `genlmsghdr cmd ${r.cmd} / version ${r.version} outside 0..255`, { format: "genetlink", cmd: r.cmd, version: r.version });
    }
    const w = beginNlMessage(r);
    w.u8(r.cmd);
    w.u8(r.version);
    w.u16(0);
    w.attrs(r.attrs);
    return endNlMessage(w);
  },
};

/** A family as CTRL_CMD_NEWFAMILY (the GETFAMILY reply) describes it. */
export interface GenlFamily {
  id: number;
  name: string;
  version: number;
  hdrsize: number;
  maxattr: number;
  ops: { id: number; flags: number }[];
  mcastGroups: { name: string; id: number }[];
}

/** CTRL_CMD_GETFAMILY for `name` (what libmnl / iproute2 send to resolve "vdpa"). */
export function ctrlGetFamilyRequest(name: string, h: { seq: number; pid: number }): Uint8Array {
  return GenlRepr.emit({ type: GENL_ID_CTRL, flags: NlmF.REQUEST | NlmF.ACK, seq: h.seq, pid: h.pid, cmd: CtrlCmd.GETFAMILY, version: 1, attrs: [nla.str(CtrlAttr.FAMILY_NAME, name)] });
}

/** The controller's reply (cmd NEWFAMILY, version 2 as the kernel's ctrl family). */
export function ctrlFamilyReply(f: GenlFamily, h: { seq: number; pid: number; flags?: number }): Uint8Array {
  const attrs: NlAttrSpec[] = [
    nla.str(CtrlAttr.FAMILY_NAME, f.name),
    nla.u16(CtrlAttr.FAMILY_ID, f.id),
    nla.u32(CtrlAttr.VERSION, f.version),
    nla.u32(CtrlAttr.HDRSIZE, f.hdrsize),
    nla.u32(CtrlAttr.MAXATTR, f.maxattr),
  ];
  if (f.ops.length > 0) {
    attrs.push(nla.nest(CtrlAttr.OPS, f.ops.map((o, i) => nla.nest(i + 1, [nla.u32(CtrlAttrOp.ID, o.id), nla.u32(CtrlAttrOp.FLAGS, o.flags)]))));
  }
  if (f.mcastGroups.length > 0) {
    attrs.push(nla.nest(CtrlAttr.MCAST_GROUPS, f.mcastGroups.map((g, i) => nla.nest(i + 1, [nla.str(CtrlAttrMcastGrp.NAME, g.name), nla.u32(CtrlAttrMcastGrp.ID, g.id)]))));
  }
  return GenlRepr.emit({ type: GENL_ID_CTRL, flags: h.flags ?? 0, seq: h.seq, pid: h.pid, cmd: CtrlCmd.NEWFAMILY, version: 2, attrs });
}

/** Decodes a controller family description; WIRE_BAD_VALUE when the id or name is missing. */
export function parseCtrlFamily(r: GenlRepr): GenlFamily {
  const f: GenlFamily = { id: -1, name: "", version: 0, hdrsize: 0, maxattr: 0, ops: [], mcastGroups: [] };
  let named = false;
  for (const a of r.attrs) {
    switch (attrType(a)) {
      case CtrlAttr.FAMILY_ID:
        f.id = nlaGet.u16(a);
        break;
      case CtrlAttr.FAMILY_NAME:
        f.name = nlaGet.str(a);
        named = true;
        break;
      case CtrlAttr.VERSION:
        f.version = nlaGet.u32(a);
        break;
      case CtrlAttr.HDRSIZE:
        f.hdrsize = nlaGet.u32(a);
        break;
      case CtrlAttr.MAXATTR:
        f.maxattr = nlaGet.u32(a);
        break;
      case CtrlAttr.OPS:
        for (const op of parseAttrs(a.payload)) {
          let id = 0;
          let flags = 0;
          for (const x of parseAttrs(op.payload)) {
            if (attrType(x) === CtrlAttrOp.ID) id = nlaGet.u32(x);
            else if (attrType(x) === CtrlAttrOp.FLAGS) flags = nlaGet.u32(x);
          }
          f.ops.push({ id, flags });
        }
        break;
      case CtrlAttr.MCAST_GROUPS:
        for (const g of parseAttrs(a.payload)) {
          let name = "";
          let id = 0;
          for (const x of parseAttrs(g.payload)) {
            if (attrType(x) === CtrlAttrMcastGrp.NAME) name = nlaGet.str(x);
            else if (attrType(x) === CtrlAttrMcastGrp.ID) id = nlaGet.u32(x);
          }
          f.mcastGroups.push({ name, id });
        }
        break;
    }
  }
  if (f.id < 0 || !named) throw new WireError("WIRE_BAD_VALUE", "family description without id or name", { format: "genetlink" });
  return f;
}

/**
 * vpf's VF-configuration admin command set, carried on the vPF's virtio admin virtqueue.
 *
 * This file is a pure codec, used from both sides like a uapi header: the hypervisor's vPF
 * decodes requests and encodes results; the model guest's virtio_net driver encodes requests and
 * decodes results. It holds no vmm object and imports only src/wire, so the guest
 * layer (above vmm) may import it without reaching into the hypervisor.
 *
 * Framing is virtio 1.3 §2.12.1 ("Group administration commands"):
 *
 *   struct virtio_admin_cmd {            // device-readable part, 24 bytes + data
 *     le16 opcode; le16 group_type; u8 reserved1[12]; le64 group_member_id;
 *     u8 command_specific_data[];
 *   };
 *   // device-writable part, 8 bytes + result
 *   { le16 status; le16 status_qualifier; u8 reserved2[4]; u8 command_specific_result[]; }
 *
 * Group type 1 is SR-IOV; the member id is the VF number 1..NumVFs, and the group exists only
 * while VF Enable is set (§2.12). Opcode and qualifier choices are explained in
 * docs/admin-commands.md; layouts there and here must agree.
 *
 * Decoders never throw on guest bytes: a request that cannot be decoded yields the spec's status
 * and qualifier for the failure (the device answers with them), and a result that cannot be
 * decoded yields `undefined` payloads the driver turns into EIO.
 */
import { put16le, put32le, put64le, u16le, u32le, u64le } from "../wire/bytes.js";

/** virtio 1.3 §2.12: group type identifier of the SR-IOV group (owner = PF, members = VFs). */
export const VIRTIO_ADMIN_GROUP_TYPE_SRIOV = 1;

/** Size of the device-readable header before command_specific_data. */
export const ADMIN_CMD_HEADER_LEN = 24;
/** Size of the device-writable header before command_specific_result. */
export const ADMIN_RESULT_HEADER_LEN = 8;

/**
 * Opcodes. 0x0000-0x0006 are the spec's (virtio 1.3 §2.12.1 table); 0x0007-0x7FFF are "commands
 * using struct virtio_admin_cmd", allocated by the spec from the bottom upwards; 0x8000-0xFFFF
 * are reserved for commands that may use a different structure. vpf's commands use the standard
 * structure, so they must stay below 0x8000, and they sit in the top block 0x7F00-0x7FFF, the
 * part of that range the spec will reach last, so future spec opcodes cannot collide with them.
 */
export const AdminOpcode = {
  LIST_QUERY: 0x0000,
  LIST_USE: 0x0001,
  VF_GET_CONFIG: 0x7f00,
  VF_SET_MAC: 0x7f01,
  VF_GET_MAC: 0x7f02,
  VF_SET_VLAN: 0x7f03,
  VF_GET_VLAN: 0x7f04,
  VF_SET_SPOOFCHK: 0x7f05,
  VF_SET_TRUST: 0x7f06,
  VF_SET_LINK_STATE: 0x7f07,
  VF_SET_RATE: 0x7f08,
  VF_GET_STATS: 0x7f09,
} as const;
export type AdminOpcodeName = keyof typeof AdminOpcode;

/** Every opcode the vPF supports for the SR-IOV group, in ascending order. */
export const SUPPORTED_OPCODES: readonly number[] = Object.values(AdminOpcode).sort((a, b) => a - b);

/**
 * Status values. The spec defines OK, EAGAIN, ENOMEM and EINVAL, chosen equal to Linux errno
 * values, and allows "other" values as group administration command errors (§2.12.1). vpf
 * follows the same convention for the two it adds: EPERM (1) for a host-policy refusal and EIO (5)
 * for a host-side failure that is neither the guest's fault nor a shortage. A driver therefore
 * maps status to errno by value (`statusErrno`).
 */
export const AdminStatus = {
  OK: 0,
  EPERM: 1,
  EIO: 5,
  EAGAIN: 11,
  ENOMEM: 12,
  EINVAL: 22,
} as const;

/**
 * Status qualifiers. 0x00-0x07 are the spec's; 0x08-0xFFFF are reserved by the spec, and vpf's
 * own qualifiers take the block 0x7F00-0x7FFF for the same reason as its opcodes. Policy
 * qualifiers come with status EPERM and name the host-policy rule that refused the request.
 */
export const AdminQualifier = {
  OK: 0x00,
  INVALID_COMMAND: 0x01,
  INVALID_OPCODE: 0x02,
  INVALID_FIELD: 0x03,
  INVALID_GROUP: 0x04,
  INVALID_MEMBER: 0x05,
  NORESOURCE: 0x06,
  TRYAGAIN: 0x07,
  /** The VLAN ID is outside the VM's allow-list. */
  POLICY_VLAN: 0x7f01,
  /** The VLAN protocol is not permitted (802.1ad where the host owns the outer tag). */
  POLICY_VLAN_PROTO: 0x7f02,
  /** The MAC address lies outside the VM's permitted prefix. */
  POLICY_MAC_PREFIX: 0x7f03,
  /** The MAC address is already in use on the NIC's embedded switch. */
  POLICY_MAC_IN_USE: 0x7f04,
  /** The VM may not turn spoof checking off. */
  POLICY_SPOOFCHK: 0x7f05,
  /** The VM may not mark a VF trusted. */
  POLICY_TRUST: 0x7f06,
  /** The requested rate exceeds the VM's ceiling. */
  POLICY_RATE: 0x7f07,
  /** The host facade refused or failed the operation for a reason of its own. */
  HOST_FAILED: 0x7f08,
} as const;

/** Link state values, numerically equal to IFLA_VF_LINK_STATE_{AUTO,ENABLE,DISABLE}. */
export const VfLinkState = { AUTO: 0, ENABLE: 1, DISABLE: 2 } as const;
export type VfLinkStateValue = (typeof VfLinkState)[keyof typeof VfLinkState];

export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;

/** Layout sizes of command_specific_data, per opcode (bytes). */
export const VF_MAC_DATA_LEN = 8;
export const VF_VLAN_DATA_LEN = 8;
export const VF_BOOL_DATA_LEN = 8;
export const VF_RATE_DATA_LEN = 8;
/** Layout sizes of command_specific_result. */
export const VF_CONFIG_RESULT_LEN = 32;
export const VF_STATS_RESULT_LEN = 64;

/** Full configuration of one VF as the host applies it (struct vpf_admin_vf_config, 32 bytes). */
export interface VfConfig {
  mac: Uint8Array;
  vlan: number;
  qos: number;
  vlanProto: number;
  spoofchk: boolean;
  trust: boolean;
  linkState: VfLinkStateValue;
  minTxRateMbps: number;
  maxTxRateMbps: number;
}

/** Counters of one VF (struct vpf_admin_vf_stats, 8 × le64), as IFLA_VF_STATS reports them. */
export interface VfStats {
  rxPackets: bigint;
  txPackets: bigint;
  rxBytes: bigint;
  txBytes: bigint;
  broadcast: bigint;
  multicast: bigint;
  rxDropped: bigint;
  txDropped: bigint;
}

export interface VfVlan {
  vlan: number;
  qos: number;
  vlanProto: number;
}

/** A decoded request. `vf` is the group member id (VF number, 1-based). */
export type VfAdminCommand =
  | { op: "list-query" }
  | { op: "list-use"; opcodes: number[] }
  | { op: "get-config"; vf: number }
  | { op: "set-mac"; vf: number; mac: Uint8Array }
  | { op: "get-mac"; vf: number }
  | ({ op: "set-vlan"; vf: number } & VfVlan)
  | { op: "get-vlan"; vf: number }
  | { op: "set-spoofchk"; vf: number; enabled: boolean }
  | { op: "set-trust"; vf: number; enabled: boolean }
  | { op: "set-link-state"; vf: number; state: VfLinkStateValue }
  | { op: "set-rate"; vf: number; minTxRateMbps: number; maxTxRateMbps: number }
  | { op: "get-stats"; vf: number };

export type VfAdminOp = VfAdminCommand["op"];

const opcodeOf: Record<VfAdminOp, number> = {
  "list-query": AdminOpcode.LIST_QUERY,
  "list-use": AdminOpcode.LIST_USE,
  "get-config": AdminOpcode.VF_GET_CONFIG,
  "set-mac": AdminOpcode.VF_SET_MAC,
  "get-mac": AdminOpcode.VF_GET_MAC,
  "set-vlan": AdminOpcode.VF_SET_VLAN,
  "get-vlan": AdminOpcode.VF_GET_VLAN,
  "set-spoofchk": AdminOpcode.VF_SET_SPOOFCHK,
  "set-trust": AdminOpcode.VF_SET_TRUST,
  "set-link-state": AdminOpcode.VF_SET_LINK_STATE,
  "set-rate": AdminOpcode.VF_SET_RATE,
  "get-stats": AdminOpcode.VF_GET_STATS,
};

/** Whether the opcode is one the vPF implements for the SR-IOV group. */
export function isSupportedOpcode(opcode: number): boolean {
  return SUPPORTED_OPCODES.includes(opcode);
}

/** Whether the opcode addresses a group member (LIST_QUERY/LIST_USE ignore group_member_id). */
export function opcodeUsesMember(opcode: number): boolean {
  return opcode !== AdminOpcode.LIST_QUERY && opcode !== AdminOpcode.LIST_USE;
}

/** The opcode a command travels under. */
export function opcodeFor(op: VfAdminOp): number {
  return opcodeOf[op];
}

/**
 * Bytes of command_specific_result a successful command returns (the driver sizes its
 * device-writable buffer as ADMIN_RESULT_HEADER_LEN + this). For LIST_QUERY it is the length of
 * the bitmap covering every supported opcode.
 */
export function resultLength(opcode: number): number {
  switch (opcode) {
    case AdminOpcode.LIST_QUERY:
      return opcodeListLength(SUPPORTED_OPCODES);
    case AdminOpcode.VF_GET_CONFIG:
      return VF_CONFIG_RESULT_LEN;
    case AdminOpcode.VF_GET_MAC:
      return VF_MAC_DATA_LEN;
    case AdminOpcode.VF_GET_VLAN:
      return VF_VLAN_DATA_LEN;
    case AdminOpcode.VF_GET_STATS:
      return VF_STATS_RESULT_LEN;
    default:
      return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// struct virtio_admin_cmd_list (virtio 1.3 §2.12.1): a le64 bitmap, bit n = opcode n.

/** Length in bytes of the bitmap that covers every opcode in `opcodes`: DIV_ROUND_UP(max+1, 64) × 8. */
export function opcodeListLength(opcodes: readonly number[]): number {
  let max = -1;
  for (const op of opcodes) if (op > max) max = op;
  return Math.ceil((max + 1) / 64) * 8;
}

/** Encodes a set of opcodes as struct virtio_admin_cmd_list. */
export function encodeOpcodeList(opcodes: readonly number[]): Uint8Array {
  const out = new Uint8Array(opcodeListLength(opcodes));
  for (const op of opcodes) {
    if (!Number.isInteger(op) || op < 0 || op > 0xffff) continue;
    const byte = op >>> 3;
    out[byte] = out[byte]! | (1 << (op & 7));
  }
  return out;
}

/** Decodes struct virtio_admin_cmd_list; trailing zero words and a partial last word are allowed. */
export function decodeOpcodeList(bytes: Uint8Array): number[] {
  const ops: number[] = [];
  const n = Math.min(bytes.length, 0x10000 / 8);
  for (let i = 0; i < n; i++) {
    const b = bytes[i]!;
    if (b === 0) continue;
    for (let bit = 0; bit < 8; bit++) if (b & (1 << bit)) ops.push(i * 8 + bit);
  }
  return ops;
}

// ---------------------------------------------------------------------------------------------
// Requests (driver encodes, device decodes).

/** Encodes the device-readable part of a request. */
export function encodeAdminCommand(cmd: VfAdminCommand): Uint8Array {
  const data = encodeCommandData(cmd);
  const out = new Uint8Array(ADMIN_CMD_HEADER_LEN + data.length);
  put16le(out, 0, opcodeOf[cmd.op]);
  put16le(out, 2, VIRTIO_ADMIN_GROUP_TYPE_SRIOV);
  const member = "vf" in cmd ? cmd.vf : 0;
  put64le(out, 16, BigInt(member));
  out.set(data, ADMIN_CMD_HEADER_LEN);
  return out;
}

function encodeCommandData(cmd: VfAdminCommand): Uint8Array {
  switch (cmd.op) {
    case "list-use":
      return encodeOpcodeList(cmd.opcodes);
    case "set-mac": {
      const d = new Uint8Array(VF_MAC_DATA_LEN);
      d.set(cmd.mac.subarray(0, 6));
      return d;
    }
    case "set-vlan":
      return encodeVlan(cmd);
    case "set-spoofchk":
    case "set-trust": {
      const d = new Uint8Array(VF_BOOL_DATA_LEN);
      d[0] = cmd.enabled ? 1 : 0;
      return d;
    }
    case "set-link-state": {
      const d = new Uint8Array(VF_BOOL_DATA_LEN);
      d[0] = cmd.state;
      return d;
    }
    case "set-rate": {
      const d = new Uint8Array(VF_RATE_DATA_LEN);
      put32le(d, 0, cmd.minTxRateMbps);
      put32le(d, 4, cmd.maxTxRateMbps);
      return d;
    }
    case "list-query":
    case "get-config":
    case "get-mac":
    case "get-vlan":
    case "get-stats":
      return new Uint8Array(0);
  }
}

/** The header fields of a request, decoded before anything else is looked at. */
export interface AdminCmdHeader {
  opcode: number;
  groupType: number;
  /** le64 member id; values ≥ 2^53 lose precision but stay far outside 1..NumVFs. */
  memberId: number;
}

export type DecodeFailure = { ok: false; status: number; qualifier: number; reason: string };
export type DecodeResult<T> = { ok: true; value: T } | DecodeFailure;

function fail(status: number, qualifier: number, reason: string): DecodeFailure {
  return { ok: false, status, qualifier, reason };
}

/**
 * Decodes the 24-byte header; a request shorter than that is an invalid command here. (The vPF
 * itself does not use this: src/virtio's admin transport reads a short header as zeros and hands
 * the data to `decodeCommandData`.)
 */
export function decodeAdminHeader(bytes: Uint8Array): DecodeResult<AdminCmdHeader> {
  if (bytes.length < ADMIN_CMD_HEADER_LEN) {
    return fail(AdminStatus.EINVAL, AdminQualifier.INVALID_COMMAND, `request is ${bytes.length} bytes, header needs ${ADMIN_CMD_HEADER_LEN}`);
  }
  return {
    ok: true,
    value: { opcode: u16le(bytes, 0), groupType: u16le(bytes, 2), memberId: u32le(bytes, 20) * 2 ** 32 + u32le(bytes, 16) },
  };
}

/**
 * Decodes a whole request and checks every field's format (not host policy, not whether the
 * member exists: the device does those). Order of checks is the spec's (§2.12.1.2): group type,
 * then opcode, then fields. Data shorter than the layout is an invalid command; longer data is
 * accepted and the excess ignored; reserved bytes are ignored as the spec asks of devices.
 */
export function decodeAdminCommand(bytes: Uint8Array): DecodeResult<VfAdminCommand> {
  const h = decodeAdminHeader(bytes);
  if (!h.ok) return h;
  const { opcode, groupType, memberId } = h.value;
  if (groupType !== VIRTIO_ADMIN_GROUP_TYPE_SRIOV) {
    return fail(AdminStatus.EINVAL, AdminQualifier.INVALID_GROUP, `group type ${groupType} is not SR-IOV (1)`);
  }
  return decodeCommandData(opcode, memberId, bytes.subarray(ADMIN_CMD_HEADER_LEN));
}

/**
 * Decodes command_specific_data of one opcode for member `vf` (for a device whose transport has
 * already split off and checked the header, as src/virtio's admin registry does).
 */
export function decodeCommandData(opcode: number, vf: number, data: Uint8Array): DecodeResult<VfAdminCommand> {
  const need = (n: number): DecodeFailure | undefined =>
    data.length < n ? fail(AdminStatus.EINVAL, AdminQualifier.INVALID_COMMAND, `opcode 0x${opcode.toString(16)} needs ${n} data bytes, got ${data.length}`) : undefined;
  switch (opcode) {
    case AdminOpcode.LIST_QUERY:
      return { ok: true, value: { op: "list-query" } };
    case AdminOpcode.LIST_USE:
      return { ok: true, value: { op: "list-use", opcodes: decodeOpcodeList(data) } };
    case AdminOpcode.VF_GET_CONFIG:
      return { ok: true, value: { op: "get-config", vf } };
    case AdminOpcode.VF_GET_MAC:
      return { ok: true, value: { op: "get-mac", vf } };
    case AdminOpcode.VF_GET_VLAN:
      return { ok: true, value: { op: "get-vlan", vf } };
    case AdminOpcode.VF_GET_STATS:
      return { ok: true, value: { op: "get-stats", vf } };
    case AdminOpcode.VF_SET_MAC: {
      const short = need(VF_MAC_DATA_LEN);
      if (short) return short;
      const mac = data.slice(0, 6);
      // A group (multicast/broadcast) address cannot name one station; all-zero is allowed and
      // means "no administrative MAC", as Linux's netdevsim and ixgbe accept it.
      if ((mac[0]! & 1) !== 0) return fail(AdminStatus.EINVAL, AdminQualifier.INVALID_FIELD, "MAC address is multicast");
      return { ok: true, value: { op: "set-mac", vf, mac } };
    }
    case AdminOpcode.VF_SET_VLAN: {
      const short = need(VF_VLAN_DATA_LEN);
      if (short) return short;
      const v = decodeVlan(data);
      if (!v.ok) return v;
      return { ok: true, value: { op: "set-vlan", vf, ...v.value } };
    }
    case AdminOpcode.VF_SET_SPOOFCHK:
    case AdminOpcode.VF_SET_TRUST: {
      const short = need(VF_BOOL_DATA_LEN);
      if (short) return short;
      const b = data[0]!;
      if (b > 1) return fail(AdminStatus.EINVAL, AdminQualifier.INVALID_FIELD, `boolean field holds ${b}`);
      const op = opcode === AdminOpcode.VF_SET_TRUST ? "set-trust" : "set-spoofchk";
      return { ok: true, value: { op, vf, enabled: b === 1 } };
    }
    case AdminOpcode.VF_SET_LINK_STATE: {
      const short = need(VF_BOOL_DATA_LEN);
      if (short) return short;
      const s = data[0]!;
      if (s !== 0 && s !== 1 && s !== 2) return fail(AdminStatus.EINVAL, AdminQualifier.INVALID_FIELD, `link state ${s} is not auto(0)/enable(1)/disable(2)`);
      return { ok: true, value: { op: "set-link-state", vf, state: s } };
    }
    case AdminOpcode.VF_SET_RATE: {
      const short = need(VF_RATE_DATA_LEN);
      if (short) return short;
      const min = u32le(data, 0);
      const max = u32le(data, 4);
      // max 0 means "no ceiling"; otherwise a floor above the ceiling is meaningless.
      if (max !== 0 && min > max) return fail(AdminStatus.EINVAL, AdminQualifier.INVALID_FIELD, `min_tx_rate ${min} > max_tx_rate ${max}`);
      return { ok: true, value: { op: "set-rate", vf, minTxRateMbps: min, maxTxRateMbps: max } };
    }
    default:
      return fail(AdminStatus.EINVAL, AdminQualifier.INVALID_OPCODE, `opcode 0x${opcode.toString(16)} is not supported`);
  }
}

/** struct vpf_admin_vf_vlan (8 bytes): le16 vlan; u8 qos; u8 reserved; le16 vlan_proto; u8 reserved[2]. */
export function encodeVlan(v: VfVlan): Uint8Array {
  const d = new Uint8Array(VF_VLAN_DATA_LEN);
  put16le(d, 0, v.vlan);
  d[2] = v.qos;
  put16le(d, 4, v.vlanProto);
  return d;
}

/** Decodes and range-checks struct vpf_admin_vf_vlan: VID 0..4095, QoS (PCP) 0..7, proto 802.1Q or 802.1ad. */
export function decodeVlan(d: Uint8Array): DecodeResult<VfVlan> {
  if (d.length < VF_VLAN_DATA_LEN) return fail(AdminStatus.EINVAL, AdminQualifier.INVALID_COMMAND, "VLAN layout needs 8 bytes");
  const vlan = u16le(d, 0);
  const qos = d[2]!;
  const vlanProto = u16le(d, 4);
  if (vlan > 4095) return fail(AdminStatus.EINVAL, AdminQualifier.INVALID_FIELD, `VLAN ID ${vlan} > 4095`);
  if (qos > 7) return fail(AdminStatus.EINVAL, AdminQualifier.INVALID_FIELD, `QoS ${qos} > 7`);
  if (vlanProto !== ETH_P_8021Q && vlanProto !== ETH_P_8021AD) {
    return fail(AdminStatus.EINVAL, AdminQualifier.INVALID_FIELD, `VLAN protocol 0x${vlanProto.toString(16)} is neither 0x8100 nor 0x88a8`);
  }
  // VID 0 with a QoS would be a priority tag; IFLA semantics say "vlan 0 = no VLAN", so QoS must be 0 too.
  if (vlan === 0 && qos !== 0) return fail(AdminStatus.EINVAL, AdminQualifier.INVALID_FIELD, "QoS without a VLAN ID");
  return { ok: true, value: { vlan, qos, vlanProto } };
}

// ---------------------------------------------------------------------------------------------
// Results (device encodes, driver decodes).

/** Encodes the device-writable part: status, qualifier, reserved, then the result payload. */
export function encodeAdminResult(status: number, qualifier: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(ADMIN_RESULT_HEADER_LEN + payload.length);
  put16le(out, 0, status);
  // The spec reserves the qualifier (device writes 0) when status is OK.
  put16le(out, 2, status === AdminStatus.OK ? 0 : qualifier);
  out.set(payload, ADMIN_RESULT_HEADER_LEN);
  return out;
}

export interface AdminResult {
  status: number;
  qualifier: number;
  payload: Uint8Array;
}

/** Decodes the device-writable part; `undefined` if it is shorter than the 8-byte header. */
export function decodeAdminResult(bytes: Uint8Array): AdminResult | undefined {
  if (bytes.length < ADMIN_RESULT_HEADER_LEN) return undefined;
  return { status: u16le(bytes, 0), qualifier: u16le(bytes, 2), payload: bytes.subarray(ADMIN_RESULT_HEADER_LEN) };
}

/** struct vpf_admin_vf_config (32 bytes), see docs/admin-commands.md. */
export function encodeVfConfig(c: VfConfig): Uint8Array {
  const d = new Uint8Array(VF_CONFIG_RESULT_LEN);
  d.set(c.mac.subarray(0, 6), 0);
  put16le(d, 6, c.vlan);
  put16le(d, 8, c.vlanProto);
  d[10] = c.qos;
  d[11] = c.spoofchk ? 1 : 0;
  d[12] = c.trust ? 1 : 0;
  d[13] = c.linkState;
  put32le(d, 16, c.minTxRateMbps);
  put32le(d, 20, c.maxTxRateMbps);
  return d;
}

export function decodeVfConfig(d: Uint8Array): VfConfig | undefined {
  if (d.length < VF_CONFIG_RESULT_LEN) return undefined;
  const ls = d[13]!;
  if (ls !== 0 && ls !== 1 && ls !== 2) return undefined;
  return {
    mac: d.slice(0, 6),
    vlan: u16le(d, 6),
    vlanProto: u16le(d, 8),
    qos: d[10]!,
    spoofchk: d[11] !== 0,
    trust: d[12] !== 0,
    linkState: ls,
    minTxRateMbps: u32le(d, 16),
    maxTxRateMbps: u32le(d, 20),
  };
}

const statsOrder: readonly (keyof VfStats)[] = ["rxPackets", "txPackets", "rxBytes", "txBytes", "broadcast", "multicast", "rxDropped", "txDropped"];

/** struct vpf_admin_vf_stats: 8 × le64 in IFLA_VF_STATS order (without its PAD). */
export function encodeVfStats(s: VfStats): Uint8Array {
  const d = new Uint8Array(VF_STATS_RESULT_LEN);
  statsOrder.forEach((k, i) => put64le(d, i * 8, s[k]));
  return d;
}

export function decodeVfStats(d: Uint8Array): VfStats | undefined {
  if (d.length < VF_STATS_RESULT_LEN) return undefined;
  const r = (i: number): bigint => u64le(d, i * 8);
  return { rxPackets: r(0), txPackets: r(1), rxBytes: r(2), txBytes: r(3), broadcast: r(4), multicast: r(5), rxDropped: r(6), txDropped: r(7) };
}

/** GET_MAC result: u8 mac[6]; u8 reserved[2]. */
export function encodeMacResult(mac: Uint8Array): Uint8Array {
  const d = new Uint8Array(VF_MAC_DATA_LEN);
  d.set(mac.subarray(0, 6));
  return d;
}

export function decodeMacResult(d: Uint8Array): Uint8Array | undefined {
  return d.length < VF_MAC_DATA_LEN ? undefined : d.slice(0, 6);
}

/**
 * The errno a driver returns for a completed command: 0 for OK; otherwise the status value read
 * as a Linux errno (the spec's convention), which gives EPERM for policy refusals and EINVAL for
 * malformed or out-of-range requests. A status vpf does not know becomes EIO.
 */
export function statusErrno(status: number): AdminErrno | undefined {
  for (const [name, value] of Object.entries(AdminStatus)) {
    if (value === status) return name === "OK" ? undefined : (name as AdminErrno);
  }
  return "EIO";
}

/** The errno names an admin command can end in (a driver's return value, negated). */
export type AdminErrno = Exclude<keyof typeof AdminStatus, "OK">;

/** Human-readable name of a qualifier, for logs and error messages. */
export function qualifierName(q: number): string {
  for (const [k, v] of Object.entries(AdminQualifier)) if (v === q) return k;
  return `0x${q.toString(16)}`;
}

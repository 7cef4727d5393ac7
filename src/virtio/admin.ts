/**
 * Group administration commands on the admin virtqueue (virtio 1.3 §2.12, §2.13; the PCI
 * placement is admin_queue_index / admin_queue_num in the common configuration).
 *
 * One command is one chain: the device-readable part is `struct virtio_admin_cmd` up to
 * command_specific_data (le16 opcode, le16 group_type, u8 reserved1[12], le64 group_member_id,
 * data...), the device-writable part is le16 status, le16 status_qualifier, u8 reserved2[4],
 * result... . Per §2.13.1 a short readable part reads as zeros, a long one is ignored, and the
 * result is truncated to the writable part; the used length is what was written.
 *
 * The registry knows LIST_QUERY and LIST_USE; a device (the vPF) registers its own opcodes.
 */
import { VpfError } from "../base/index.js";
import type { SplitQueueDevice } from "./device-queue.js";
import {
  ADMIN_CMD_HDR_LEN,
  ADMIN_CMD_STATUS_LEN,
  VIRTIO_ADMIN_CMD_LIST_QUERY,
  VIRTIO_ADMIN_CMD_LIST_USE,
  VIRTIO_ADMIN_STATUS_EINVAL,
  VIRTIO_ADMIN_STATUS_OK,
  VIRTIO_ADMIN_STATUS_Q_INVALID_COMMAND,
  VIRTIO_ADMIN_STATUS_Q_INVALID_FIELD,
  VIRTIO_ADMIN_STATUS_Q_INVALID_GROUP,
  VIRTIO_ADMIN_STATUS_Q_INVALID_MEMBER,
  VIRTIO_ADMIN_STATUS_Q_INVALID_OPCODE,
  VIRTIO_ADMIN_STATUS_Q_OK,
} from "./constants.js";

/** A registration mistake by device code (not guest input). */
export class AdminCommandError extends VpfError {}

/** A decoded command as a handler sees it. */
export interface AdminCommand {
  readonly opcode: number;
  readonly groupType: number;
  /** group_member_id; for SR-IOV the VF number 1..NumVFs (already validated when usesMember). */
  readonly memberId: number;
  /** command_specific_data: everything after the 24-byte header. */
  readonly data: Uint8Array;
}

export interface AdminResponse {
  readonly status: number;
  readonly qualifier?: number;
  /** command_specific_result; padded to a multiple of 8 bytes (§2.13.1). */
  readonly result?: Uint8Array;
}

export interface AdminCommandHandler {
  readonly name: string;
  /** Whether group_member_id names a member that must exist (1..NumVFs for SR-IOV). */
  readonly usesMember: boolean;
  handle(cmd: AdminCommand): AdminResponse;
}

/** A group type the owner device supports (for SR-IOV: its VFs). */
export interface AdminGroup {
  readonly groupType: number;
  /** Whether the group type is implemented at all (SR-IOV: the capability is present). */
  supported(): boolean;
  /** Whether members exist now (SR-IOV: VF Enable set). */
  active(): boolean;
  /** Whether `id` names a member (SR-IOV: 1..NumVFs). */
  memberValid(id: number): boolean;
}

export interface AdminStats {
  commands: number;
  ok: number;
  failed: number;
  /** Chains with no device-writable part: the status could not be reported. */
  noStatusBuffer: number;
}

const MAX_OPCODE = 0x7fff; // 0x8000.. is reserved for commands with another structure

/** Opcode bitmap as `struct virtio_admin_cmd_list`: le64 words, bit n = opcode n. */
export function encodeOpcodeBitmap(opcodes: Iterable<number>): Uint8Array {
  let max = -1;
  const list = [...opcodes];
  for (const o of list) max = Math.max(max, o);
  const out = new Uint8Array(Math.ceil((max + 1) / 64) * 8);
  for (const o of list) out[o >> 3] = (out[o >> 3] ?? 0) | (1 << (o & 7));
  return out;
}

/** The opcodes set in a bitmap. */
export function decodeOpcodeBitmap(bytes: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    if (b === 0) continue;
    for (let k = 0; k < 8; k++) if ((b & (1 << k)) !== 0) out.push(i * 8 + k);
  }
  return out;
}

export class AdminCommandRegistry {
  readonly #handlers = new Map<number, AdminCommandHandler>();
  readonly #groups = new Map<number, AdminGroup>();
  /** Per group type: opcodes the driver declared with LIST_USE. */
  readonly #inUse = new Map<number, Set<number>>();
  readonly stats: AdminStats = { commands: 0, ok: 0, failed: 0, noStatusBuffer: 0 };

  constructor(groups: readonly AdminGroup[]) {
    for (const g of groups) this.#groups.set(g.groupType, g);
    this.reset();
  }

  /**
   * Adds an opcode (0x0002..0x7FFF). Throws ADMIN_OPCODE_TAKEN for a duplicate or a spec-owned
   * opcode, ADMIN_BAD_OPCODE for a value out of range.
   */
  register(opcode: number, handler: AdminCommandHandler): void {
    if (!Number.isInteger(opcode) || opcode < 0 || opcode > MAX_OPCODE) {
      throw new AdminCommandError("ADMIN_BAD_OPCODE", `admin opcode ${opcode} is not in 0..0x7fff`, { details: { opcode } });
    }
    if (opcode === VIRTIO_ADMIN_CMD_LIST_QUERY || opcode === VIRTIO_ADMIN_CMD_LIST_USE || this.#handlers.has(opcode)) {
      throw new AdminCommandError("ADMIN_OPCODE_TAKEN", `admin opcode 0x${opcode.toString(16)} is already defined`, { details: { opcode } });
    }
    this.#handlers.set(opcode, handler);
  }

  /** Opcodes LIST_QUERY reports. */
  supportedOpcodes(): number[] {
    return [VIRTIO_ADMIN_CMD_LIST_QUERY, VIRTIO_ADMIN_CMD_LIST_USE, ...[...this.#handlers.keys()].sort((a, b) => a - b)];
  }

  /** §2.12.1.2: after reset only LIST_QUERY and LIST_USE may be used. */
  reset(): void {
    this.#inUse.clear();
    for (const g of this.#groups.keys()) this.#inUse.set(g, new Set([VIRTIO_ADMIN_CMD_LIST_QUERY, VIRTIO_ADMIN_CMD_LIST_USE]));
  }

  /**
   * Executes one command given its device-readable bytes; returns the device-writable bytes
   * (status header + result, not yet truncated). Never throws on guest input.
   */
  execute(readable: Uint8Array): Uint8Array {
    const hdr = new Uint8Array(ADMIN_CMD_HDR_LEN);
    hdr.set(readable.subarray(0, ADMIN_CMD_HDR_LEN));
    const dv = new DataView(hdr.buffer);
    const opcode = dv.getUint16(0, true);
    const groupType = dv.getUint16(2, true);
    const member = dv.getBigUint64(16, true);
    const memberId = member > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(member);
    const data = readable.length > ADMIN_CMD_HDR_LEN ? readable.slice(ADMIN_CMD_HDR_LEN) : new Uint8Array(0);
    const r = this.#dispatch({ opcode, groupType, memberId, data });
    this.stats.commands++;
    if (r.status === VIRTIO_ADMIN_STATUS_OK) this.stats.ok++;
    else this.stats.failed++;
    const result = r.result ?? new Uint8Array(0);
    const out = new Uint8Array(ADMIN_CMD_STATUS_LEN + Math.ceil(result.length / 8) * 8);
    const odv = new DataView(out.buffer);
    odv.setUint16(0, r.status, true);
    odv.setUint16(2, r.qualifier ?? VIRTIO_ADMIN_STATUS_Q_OK, true);
    out.set(result, ADMIN_CMD_STATUS_LEN);
    return out;
  }

  /** Serves every available chain of an admin queue; returns how many were completed. */
  process(queue: SplitQueueDevice): number {
    let n = 0;
    for (let c = queue.pop(); c !== undefined; c = queue.pop()) {
      const out = this.execute(queue.readChain(c));
      if (c.writableLen === 0) this.stats.noStatusBuffer++;
      const written = queue.writeChain(c, out);
      queue.addUsed(c.head, written);
      n++;
    }
    if (n > 0) queue.publishUsed();
    return n;
  }

  #dispatch(cmd: AdminCommand): AdminResponse {
    const fail = (qualifier: number): AdminResponse => ({ status: VIRTIO_ADMIN_STATUS_EINVAL, qualifier });
    // §2.12.1.2: group type first, then opcode, then member.
    const group = this.#groups.get(cmd.groupType);
    if (group === undefined || !group.supported()) return fail(VIRTIO_ADMIN_STATUS_Q_INVALID_GROUP);
    const inUse = this.#inUse.get(cmd.groupType);
    const isList = cmd.opcode === VIRTIO_ADMIN_CMD_LIST_QUERY || cmd.opcode === VIRTIO_ADMIN_CMD_LIST_USE;
    const handler = this.#handlers.get(cmd.opcode);
    if ((!isList && handler === undefined) || inUse === undefined || !inUse.has(cmd.opcode)) return fail(VIRTIO_ADMIN_STATUS_Q_INVALID_OPCODE);
    if (cmd.opcode === VIRTIO_ADMIN_CMD_LIST_QUERY) {
      return { status: VIRTIO_ADMIN_STATUS_OK, result: encodeOpcodeBitmap(this.supportedOpcodes()) };
    }
    if (cmd.opcode === VIRTIO_ADMIN_CMD_LIST_USE) {
      const wanted = decodeOpcodeBitmap(cmd.data);
      const supported = new Set(this.supportedOpcodes());
      // Unsupported bits: INVALID_FIELD, and the usable set stays as it was.
      if (wanted.some((o) => !supported.has(o))) return fail(VIRTIO_ADMIN_STATUS_Q_INVALID_FIELD);
      this.#inUse.set(cmd.groupType, new Set(wanted));
      return { status: VIRTIO_ADMIN_STATUS_OK };
    }
    if (handler === undefined) return fail(VIRTIO_ADMIN_STATUS_Q_INVALID_OPCODE);
    if (handler.usesMember) {
      // SR-IOV (§2.12.1.2): no members while VF Enable is clear (INVALID_GROUP), and the member
      // must be 1..NumVFs (INVALID_MEMBER).
      if (!group.active()) return fail(VIRTIO_ADMIN_STATUS_Q_INVALID_GROUP);
      if (cmd.memberId < 0 || !group.memberValid(cmd.memberId)) return fail(VIRTIO_ADMIN_STATUS_Q_INVALID_MEMBER);
    }
    try {
      return handler.handle(cmd);
    } catch (e) {
      // A handler bug must not take the emulator down with guest-controlled input; the guest
      // sees EINVAL / INVALID_COMMAND, the error is kept for the owner.
      this.lastHandlerError = e;
      return fail(VIRTIO_ADMIN_STATUS_Q_INVALID_COMMAND);
    }
  }

  /** The last exception a handler threw (reported to the guest as INVALID_COMMAND). */
  lastHandlerError: unknown = undefined;
}

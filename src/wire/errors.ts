// The module itself, not the index: the CNI plugin is a short-lived process that loads src/wire
// piecemeal, and the base index would pull in the clock and the random generator too.
import { VpfError } from "../base/errors.js";

/**
 * Stable codes for malformed or unsupported wire bytes. Every parser in src/wire throws only
 * WireError on bad input (a property test feeds random bytes to each one); callers branch on
 * `code`, and `details` names the format, the field and the offending numbers.
 */
export type WireErrorCode =
  /** The buffer ends before a header, option, attribute or declared length does. */
  | "WIRE_TRUNCATED"
  /** A length field is impossible (smaller than its header, inconsistent with another length). */
  | "WIRE_BAD_LENGTH"
  /** A checksum does not verify. */
  | "WIRE_BAD_CHECKSUM"
  /** A version field is not the one the format defines (IPv4 4, IPv6 6, pcap 2.4). */
  | "WIRE_BAD_VERSION"
  /** A field holds a value the format forbids (VLAN ID > 4095, bad magic, unparsable address text). */
  | "WIRE_BAD_VALUE"
  /** An output buffer is too small for what emit() must write. */
  | "WIRE_BUFFER_TOO_SMALL";

export class WireError extends VpfError {
  declare readonly code: WireErrorCode;
  constructor(code: WireErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details === undefined ? undefined : { details });
  }
}

/** Throws WIRE_TRUNCATED unless `have >= need`. */
export function needBytes(format: string, have: number, need: number): void {
  if (have < need) throw new WireError("WIRE_TRUNCATED", `${format}: need ${need} bytes, have ${have}`, { format, have, need });
}

/** Throws WIRE_BUFFER_TOO_SMALL unless an emit target holds `need` bytes. */
export function needRoom(format: string, have: number, need: number): void {
  if (have < need) throw new WireError("WIRE_BUFFER_TOO_SMALL", `${format}: emit needs ${need} bytes, buffer has ${have}`, { format, have, need });
}

import { WireError } from "./errors.js";

const MAC_RE = /^([0-9a-fA-F]{2})([:-])([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})\2([0-9a-fA-F]{2})$/;

/**
 * A 48-bit IEEE 802 MAC address, immutable. Bit 0 of the first octet is the group (multicast)
 * bit and bit 1 the locally-administered bit (IEEE 802-2014 §8.2). `key` is the address as a
 * 48-bit integer (exact in a double), the cheap map key the eswitch's FDB uses.
 */
export class MacAddress {
  static readonly BROADCAST = new MacAddress(0xffffffffffff);
  static readonly ZERO = new MacAddress(0);

  private constructor(readonly key: number) {}

  /** Parses "aa:bb:cc:dd:ee:ff" (or with '-'), case-insensitive; throws WIRE_BAD_VALUE otherwise. */
  static parse(text: string): MacAddress {
    const m = MAC_RE.exec(text);
    if (m === null) throw new WireError("WIRE_BAD_VALUE", `not a MAC address: ${JSON.stringify(text)}`, { format: "mac", text });
    let k = 0;
    for (const i of [1, 3, 4, 5, 6, 7]) k = k * 256 + parseInt(m[i]!, 16);
    return new MacAddress(k);
  }

  /** The 6 bytes at `offset` of `bytes`; throws WIRE_TRUNCATED if they are not all there. */
  static fromBytes(bytes: Uint8Array, offset = 0): MacAddress {
    if (offset < 0 || bytes.length < offset + 6) {
      throw new WireError("WIRE_TRUNCATED", "MAC address needs 6 bytes", { format: "mac", have: bytes.length - offset, need: 6 });
    }
    return new MacAddress(macKeyAt(bytes, offset));
  }

  /** From a 48-bit integer key; throws WIRE_BAD_VALUE outside 0..2^48-1. */
  static fromKey(key: number): MacAddress {
    if (!Number.isInteger(key) || key < 0 || key > 0xffffffffffff) {
      throw new WireError("WIRE_BAD_VALUE", `MAC key out of range: ${key}`, { format: "mac", key });
    }
    return new MacAddress(key);
  }

  get isBroadcast(): boolean {
    return this.key === 0xffffffffffff;
  }
  /** Group address: multicast, broadcast included. */
  get isMulticast(): boolean {
    return macKeyIsMulticast(this.key);
  }
  get isUnicast(): boolean {
    return !this.isMulticast;
  }
  get isZero(): boolean {
    return this.key === 0;
  }
  get isLocallyAdministered(): boolean {
    return Math.floor(this.key / 2 ** 40) % 4 >= 2;
  }

  bytes(): Uint8Array {
    const b = new Uint8Array(6);
    this.writeTo(b, 0);
    return b;
  }

  writeTo(b: Uint8Array, offset: number): void {
    writeMacKey(b, offset, this.key);
  }

  equals(other: MacAddress): boolean {
    return this.key === other.key;
  }

  /** Lower-case colon form, as iproute2 and tshark print it. */
  toString(): string {
    const hi = Math.floor(this.key / 2 ** 24);
    const lo = this.key % 2 ** 24;
    const h = hi.toString(16).padStart(6, "0") + lo.toString(16).padStart(6, "0");
    return `${h.slice(0, 2)}:${h.slice(2, 4)}:${h.slice(4, 6)}:${h.slice(6, 8)}:${h.slice(8, 10)}:${h.slice(10, 12)}`;
  }

  toJSON(): string {
    return this.toString();
  }
}

/** Reads 6 bytes at `o` as a 48-bit key without allocating. The caller guarantees bounds. */
export function macKeyAt(b: Uint8Array, o: number): number {
  return (((b[o]! << 8) | b[o + 1]!) * 2 ** 32) + (((b[o + 2]! << 24) | (b[o + 3]! << 16) | (b[o + 4]! << 8) | b[o + 5]!) >>> 0);
}

/** Writes a 48-bit key as 6 bytes at `o`. The caller guarantees bounds. */
export function writeMacKey(b: Uint8Array, o: number, key: number): void {
  const hi = Math.floor(key / 2 ** 32);
  const lo = key >>> 0;
  b[o] = (hi >>> 8) & 0xff;
  b[o + 1] = hi & 0xff;
  b[o + 2] = (lo >>> 24) & 0xff;
  b[o + 3] = (lo >>> 16) & 0xff;
  b[o + 4] = (lo >>> 8) & 0xff;
  b[o + 5] = lo & 0xff;
}

/** True for group addresses (the I/G bit, bit 0 of the first octet), broadcast included. */
export function macKeyIsMulticast(key: number): boolean {
  return Math.floor(key / 2 ** 40) % 2 === 1;
}

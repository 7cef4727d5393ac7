import { WireError } from "./errors.js";
import { MacAddress } from "./mac.js";

/** IP protocol numbers (IANA "Assigned Internet Protocol Numbers"); others pass through as numbers. */
export const IpProtocol = {
  HOPOPT: 0,
  ICMP: 1,
  TCP: 6,
  UDP: 17,
  IPV6_ROUTE: 43,
  IPV6_FRAG: 44,
  ICMPV6: 58,
  IPV6_NONXT: 59,
  IPV6_OPTS: 60,
} as const;

function bad(format: string, text: string): WireError {
  return new WireError("WIRE_BAD_VALUE", `not an ${format} address: ${JSON.stringify(text)}`, { format, text });
}

/** An IPv4 address, immutable; `value` is the address as an unsigned 32-bit integer. */
export class Ipv4Address {
  static readonly UNSPECIFIED = new Ipv4Address(0);
  static readonly BROADCAST = new Ipv4Address(0xffffffff);
  readonly family = 4 as const;

  private constructor(readonly value: number) {}

  /** Dotted-quad text, each part a decimal 0..255 without leading zeros; throws WIRE_BAD_VALUE. */
  static parse(text: string): Ipv4Address {
    const parts = text.split(".");
    if (parts.length !== 4) throw bad("IPv4", text);
    let v = 0;
    for (const p of parts) {
      if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) throw bad("IPv4", text);
      const n = Number(p);
      if (n > 255) throw bad("IPv4", text);
      v = v * 256 + n;
    }
    return new Ipv4Address(v);
  }
  static fromU32(v: number): Ipv4Address {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new WireError("WIRE_BAD_VALUE", `IPv4 value out of range: ${v}`, { format: "IPv4", value: v });
    return new Ipv4Address(v);
  }
  static fromBytes(b: Uint8Array, offset = 0): Ipv4Address {
    if (offset < 0 || b.length < offset + 4) throw new WireError("WIRE_TRUNCATED", "IPv4 address needs 4 bytes", { format: "IPv4", have: b.length - offset, need: 4 });
    return new Ipv4Address(((b[offset]! << 24) | (b[offset + 1]! << 16) | (b[offset + 2]! << 8) | b[offset + 3]!) >>> 0);
  }
  bytes(): Uint8Array {
    const b = new Uint8Array(4);
    this.writeTo(b, 0);
    return b;
  }
  writeTo(b: Uint8Array, o: number): void {
    b[o] = this.value >>> 24;
    b[o + 1] = (this.value >>> 16) & 0xff;
    b[o + 2] = (this.value >>> 8) & 0xff;
    b[o + 3] = this.value & 0xff;
  }
  get isMulticast(): boolean {
    return this.value >>> 28 === 0xe;
  }
  get isBroadcast(): boolean {
    return this.value === 0xffffffff;
  }
  equals(o: Ipv4Address): boolean {
    return this.value === o.value;
  }
  toString(): string {
    const v = this.value;
    return `${v >>> 24}.${(v >>> 16) & 0xff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
  }
  toJSON(): string {
    return this.toString();
  }
}

/** An IPv6 address, immutable (RFC 4291); text form per RFC 5952. */
export class Ipv6Address {
  static readonly UNSPECIFIED = new Ipv6Address(new Uint8Array(16));
  readonly family = 6 as const;
  readonly #b: Uint8Array;

  private constructor(b: Uint8Array) {
    this.#b = b;
  }

  /** RFC 4291 §2.2 text: eight groups, one "::", an optional dotted-quad tail; throws WIRE_BAD_VALUE. */
  static parse(text: string): Ipv6Address {
    const out = new Uint8Array(16);
    let s = text;
    const lastColon = s.lastIndexOf(":");
    if (lastColon >= 0 && s.slice(lastColon + 1).includes(".")) {
      // An embedded dotted quad stands for the last two groups (RFC 4291 §2.2 form 3).
      const v4 = Ipv4Address.parse(s.slice(lastColon + 1));
      s = `${s.slice(0, lastColon + 1)}${(v4.value >>> 16).toString(16)}:${(v4.value & 0xffff).toString(16)}`;
    }
    const halves = s.split("::");
    if (halves.length > 2) throw bad("IPv6", text);
    const groups = (h: string): number[] => {
      if (h === "") return [];
      return h.split(":").map((g) => {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw bad("IPv6", text);
        return parseInt(g, 16);
      });
    };
    const head = groups(halves[0]!);
    const rest = halves.length === 2 ? groups(halves[1]!) : [];
    const total = head.length + rest.length;
    if (halves.length === 2 ? total > 7 : total !== 8) throw bad("IPv6", text);
    const all = halves.length === 2 ? [...head, ...new Array<number>(8 - total).fill(0), ...rest] : head;
    all.forEach((g, i) => {
      out[2 * i] = g >>> 8;
      out[2 * i + 1] = g & 0xff;
    });
    return new Ipv6Address(out);
  }
  static fromBytes(b: Uint8Array, offset = 0): Ipv6Address {
    if (offset < 0 || b.length < offset + 16) throw new WireError("WIRE_TRUNCATED", "IPv6 address needs 16 bytes", { format: "IPv6", have: b.length - offset, need: 16 });
    return new Ipv6Address(b.slice(offset, offset + 16));
  }
  /** fe80::/64 with the modified EUI-64 interface identifier of `mac` (RFC 4291 appendix A). */
  static linkLocalFromMac(mac: MacAddress): Ipv6Address {
    const m = mac.bytes();
    const b = new Uint8Array(16);
    b[0] = 0xfe;
    b[1] = 0x80;
    b.set([m[0]! ^ 0x02, m[1]!, m[2]!, 0xff, 0xfe, m[3]!, m[4]!, m[5]!], 8);
    return new Ipv6Address(b);
  }
  bytes(): Uint8Array {
    return this.#b.slice();
  }
  writeTo(b: Uint8Array, o: number): void {
    b.set(this.#b, o);
  }
  byte(i: number): number {
    return this.#b[i] ?? 0;
  }
  get isMulticast(): boolean {
    return this.#b[0] === 0xff;
  }
  get isLinkLocal(): boolean {
    return this.#b[0] === 0xfe && (this.#b[1]! & 0xc0) === 0x80;
  }
  get isUnspecified(): boolean {
    return this.#b.every((x) => x === 0);
  }
  /** ff02::1:ffXX:XXXX for this address (RFC 4291 §2.7.1), where neighbour solicitations go. */
  solicitedNodeMulticast(): Ipv6Address {
    const b = new Uint8Array(16);
    b.set([0xff, 0x02], 0);
    b.set([0x01, 0xff, this.#b[13]!, this.#b[14]!, this.#b[15]!], 11);
    return new Ipv6Address(b);
  }
  /** The Ethernet group address 33:33 + low 32 bits (RFC 2464 §7) for a multicast address. */
  multicastMac(): MacAddress {
    return MacAddress.fromBytes(Uint8Array.of(0x33, 0x33, this.#b[12]!, this.#b[13]!, this.#b[14]!, this.#b[15]!));
  }
  equals(o: Ipv6Address): boolean {
    for (let i = 0; i < 16; i++) if (this.#b[i] !== o.#b[i]) return false;
    return true;
  }
  /** RFC 5952: lower case, no leading zeros, the longest run (≥ 2) of zero groups as "::", first on ties. */
  toString(): string {
    const g: number[] = [];
    for (let i = 0; i < 8; i++) g.push((this.#b[2 * i]! << 8) | this.#b[2 * i + 1]!);
    let bestStart = -1;
    let bestLen = 1;
    for (let i = 0; i < 8; ) {
      if (g[i] !== 0) {
        i++;
        continue;
      }
      let j = i;
      while (j < 8 && g[j] === 0) j++;
      if (j - i > bestLen) {
        bestStart = i;
        bestLen = j - i;
      }
      i = j;
    }
    const hexs = g.map((x) => x.toString(16));
    if (bestStart < 0) return hexs.join(":");
    return `${hexs.slice(0, bestStart).join(":")}::${hexs.slice(bestStart + bestLen).join(":")}`;
  }
  toJSON(): string {
    return this.toString();
  }
}

export type IpAddress = Ipv4Address | Ipv6Address;

/** Parses either family's text form; throws WIRE_BAD_VALUE for neither. */
export function parseIpAddress(text: string): IpAddress {
  return text.includes(":") ? Ipv6Address.parse(text) : Ipv4Address.parse(text);
}

import { WireError } from "./errors.js";
import type { IpAddress } from "./ip.js";

/**
 * The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of 16-bit
 * big-endian words. `checksumAdd` accumulates into a plain number (no folding needed below 2^52,
 * i.e. for any buffer a frame can hold); `checksumFinish` folds and complements.
 */
export function checksumAdd(sum: number, b: Uint8Array, off = 0, len = b.length - off): number {
  const end = off + len;
  let i = off;
  if (len >= 64) {
    // 32-bit big-endian loads through a DataView are the fastest path V8 offers for long runs.
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const end8 = end - 7;
    for (; i < end8; i += 8) {
      const w0 = v.getUint32(i);
      const w1 = v.getUint32(i + 4);
      sum += (w0 >>> 16) + (w0 & 0xffff) + (w1 >>> 16) + (w1 & 0xffff);
    }
  }
  for (; i + 1 < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i < end) sum += b[i]! << 8; // odd byte padded with zero
  return sum;
}

export function checksumFinish(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** Checksum of a whole buffer; 0 means a buffer that includes a correct checksum field verifies. */
export function internetChecksum(b: Uint8Array, off = 0, len = b.length - off): number {
  return checksumFinish(checksumAdd(0, b, off, len));
}

/**
 * The partial sum of the pseudo-header that UDP, TCP and ICMPv6 checksums cover: for IPv4
 * (RFC 768, RFC 9293 §3.1) src, dst, zero, protocol, length; for IPv6 (RFC 8200 §8.1) src, dst,
 * 32-bit upper-layer length, three zero bytes, next header.
 */
export function pseudoHeaderSum(src: IpAddress, dst: IpAddress, protocol: number, length: number): number {
  let sum = 0;
  if (src.family === 4 && dst.family === 4) {
    sum += (src.value >>> 16) + (src.value & 0xffff) + (dst.value >>> 16) + (dst.value & 0xffff);
    return sum + protocol + length;
  }
  if (src.family === 6 && dst.family === 6) {
    for (let i = 0; i < 16; i += 2) sum += ((src.byte(i) << 8) | src.byte(i + 1)) + ((dst.byte(i) << 8) | dst.byte(i + 1));
    return sum + (length >>> 16) + (length & 0xffff) + protocol;
  }
  throw new WireError("WIRE_BAD_VALUE", "pseudo-header addresses must be of one family", { format: "pseudo-header" });
}

import { put32le } from "./bytes.js";
import { needBytes, WireError } from "./errors.js";

/**
 * Classic libpcap capture files (the format tcpdump and Wireshark read; see the pcap-savefile
 * man page and draft-ietf-opsawg-pcap). vpf writes little-endian files, version 2.4, and reads
 * either byte order. Timestamps come from the virtual clock as bigint nanoseconds.
 */
export const LINKTYPE_ETHERNET = 1;
export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;
export const PCAP_GLOBAL_HEADER_LEN = 24;
export const PCAP_RECORD_HEADER_LEN = 16;

export type PcapResolution = "ns" | "us";

export interface PcapOptions {
  /** Timestamp resolution of the file; default "ns". */
  resolution?: PcapResolution;
  /** Longest stored packet; longer packets are cut, their original length kept. Default 262144. */
  snaplen?: number;
  /** Link type; default LINKTYPE_ETHERNET. */
  linktype?: number;
}

function resolved(o?: PcapOptions): Required<PcapOptions> {
  const r = { resolution: o?.resolution ?? "ns", snaplen: o?.snaplen ?? 262144, linktype: o?.linktype ?? LINKTYPE_ETHERNET };
  if (!Number.isInteger(r.snaplen) || r.snaplen <= 0 || r.snaplen > 0x7fffffff) throw new WireError("WIRE_BAD_VALUE", `pcap snaplen ${r.snaplen} out of range`, { format: "pcap", field: "snaplen", value: r.snaplen });
  return r;
}

/** The 24-byte file header. */
export function pcapGlobalHeader(opts?: PcapOptions): Uint8Array {
  const o = resolved(opts);
  const b = new Uint8Array(PCAP_GLOBAL_HEADER_LEN);
  const v = new DataView(b.buffer);
  v.setUint32(0, o.resolution === "ns" ? PCAP_MAGIC_NS : PCAP_MAGIC_US, true);
  v.setUint16(4, 2, true);
  v.setUint16(6, 4, true);
  v.setInt32(8, 0, true); // thiszone: timestamps are UTC
  v.setUint32(12, 0, true); // sigfigs
  v.setUint32(16, o.snaplen, true);
  v.setUint32(20, o.linktype, true);
  return b;
}

/** One record (16-byte header + captured bytes) for a packet seen at `tsNs` virtual nanoseconds. */
export function pcapRecord(tsNs: bigint, frame: Uint8Array, opts?: PcapOptions, origLen = frame.length): Uint8Array {
  return record(tsNs, frame, resolved(opts), origLen);
}

function record(tsNs: bigint, frame: Uint8Array, o: Required<PcapOptions>, origLen: number): Uint8Array {
  if (tsNs < 0n || tsNs >= 2n ** 32n * 1_000_000_000n) throw new WireError("WIRE_BAD_VALUE", `pcap timestamp ${tsNs} ns outside the 32-bit seconds range`, { format: "pcap", field: "timestamp", value: tsNs.toString() });
  if (!Number.isInteger(origLen) || origLen < frame.length || origLen > 0xffffffff) throw new WireError("WIRE_BAD_LENGTH", `pcap original length ${origLen} < captured ${frame.length}`, { format: "pcap", field: "orig_len", value: origLen });
  const incl = Math.min(frame.length, o.snaplen);
  const b = new Uint8Array(PCAP_RECORD_HEADER_LEN + incl);
  const sec = tsNs / 1_000_000_000n;
  const frac = Number(tsNs - sec * 1_000_000_000n);
  put32le(b, 0, Number(sec));
  put32le(b, 4, o.resolution === "ns" ? frac : Math.floor(frac / 1000));
  put32le(b, 8, incl);
  put32le(b, 12, origLen);
  b.set(incl === frame.length ? frame : frame.subarray(0, incl), PCAP_RECORD_HEADER_LEN);
  return b;
}

/** Collects packets in memory; `bytes()` is the whole file. A tap may instead stream pcapGlobalHeader + pcapRecord chunks. */
export class PcapWriter {
  readonly #opts: Required<PcapOptions>;
  readonly #chunks: Uint8Array[] = [];
  #size = 0;
  #count = 0;

  constructor(opts?: PcapOptions) {
    this.#opts = resolved(opts);
    this.#push(pcapGlobalHeader(this.#opts));
  }
  #push(c: Uint8Array): void {
    this.#chunks.push(c);
    this.#size += c.length;
  }
  write(tsNs: bigint, frame: Uint8Array, origLen = frame.length): void {
    this.#push(record(tsNs, frame, this.#opts, origLen));
    this.#count++;
  }
  get packetCount(): number {
    return this.#count;
  }
  get byteLength(): number {
    return this.#size;
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.#size);
    let o = 0;
    for (const c of this.#chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

export interface PcapPacket {
  tsNs: bigint;
  data: Uint8Array;
  origLen: number;
}

export interface PcapFile {
  resolution: PcapResolution;
  bigEndian: boolean;
  versionMajor: number;
  versionMinor: number;
  snaplen: number;
  linktype: number;
  packets: PcapPacket[];
}

/** Reads a whole classic pcap file (either byte order, µs or ns); throws WireError on malformed input. */
export function readPcap(bytes: Uint8Array): PcapFile {
  needBytes("pcap", bytes.length, PCAP_GLOBAL_HEADER_LEN);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = v.getUint32(0, true);
  const be = v.getUint32(0, false);
  let bigEndian: boolean;
  let resolution: PcapResolution;
  if (le === PCAP_MAGIC_US || le === PCAP_MAGIC_NS) {
    bigEndian = false;
    resolution = le === PCAP_MAGIC_NS ? "ns" : "us";
  } else if (be === PCAP_MAGIC_US || be === PCAP_MAGIC_NS) {
    bigEndian = true;
    resolution = be === PCAP_MAGIC_NS ? "ns" : "us";
  } else {
    throw new WireError("WIRE_BAD_VALUE", `not a pcap file (magic 0x${be.toString(16)})`, { format: "pcap", field: "magic", value: be });
  }
  const lit = !bigEndian;
  const versionMajor = v.getUint16(4, lit);
  const versionMinor = v.getUint16(6, lit);
  if (versionMajor !== 2) throw new WireError("WIRE_BAD_VERSION", `pcap version ${versionMajor}.${versionMinor}`, { format: "pcap", version: `${versionMajor}.${versionMinor}` });
  const snaplen = v.getUint32(16, lit);
  const linktype = v.getUint32(20, lit) & 0x0fffffff; // upper bits: FCS length field
  const packets: PcapPacket[] = [];
  let o = PCAP_GLOBAL_HEADER_LEN;
  while (o < bytes.length) {
    needBytes("pcap record header", bytes.length - o, PCAP_RECORD_HEADER_LEN);
    const sec = v.getUint32(o, lit);
    const frac = v.getUint32(o + 4, lit);
    const incl = v.getUint32(o + 8, lit);
    const orig = v.getUint32(o + 12, lit);
    if (frac >= (resolution === "ns" ? 1_000_000_000 : 1_000_000)) throw new WireError("WIRE_BAD_VALUE", `pcap sub-second field ${frac} too large`, { format: "pcap", offset: o, value: frac });
    if (incl > orig) throw new WireError("WIRE_BAD_LENGTH", `pcap captured length ${incl} > original ${orig}`, { format: "pcap", offset: o, incl, orig });
    needBytes("pcap record", bytes.length - o - PCAP_RECORD_HEADER_LEN, incl);
    const tsNs = BigInt(sec) * 1_000_000_000n + BigInt(resolution === "ns" ? frac : frac * 1000);
    packets.push({ tsNs, data: bytes.slice(o + PCAP_RECORD_HEADER_LEN, o + PCAP_RECORD_HEADER_LEN + incl), origLen: orig });
    o += PCAP_RECORD_HEADER_LEN + incl;
  }
  return { resolution, bigEndian, versionMajor, versionMinor, snaplen, linktype, packets };
}

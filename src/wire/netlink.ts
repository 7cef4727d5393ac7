import { put32le, u16le, u32le, u64le } from "./bytes.js";
import { needBytes, WireError } from "./errors.js";

/**
 * Netlink framing (Linux include/uapi/linux/netlink.h, numbers checked against the 6.1 UAPI
 * headers): 16-byte `nlmsghdr` in host byte order (little-endian: vpf models x86), messages and
 * attributes padded to 4 bytes (NLMSG_ALIGN, NLA_ALIGN), attributes as `{u16 len; u16 type}` TLVs
 * that nest. Decoding is tolerant: unknown types are kept as raw `NlAttr`s and nothing requires
 * NLA_F_NESTED (the kernel's VF dump opens nests without it, netlink-vf.md §4).
 */
export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;
export const NETLINK_ROUTE = 0;
export const NETLINK_GENERIC = 16;

export function nlAlign(n: number): number {
  return (n + 3) & ~3;
}

export const NlMsgType = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4, MIN_TYPE: 16 } as const;

export const NlmF = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  ECHO: 0x8,
  DUMP_INTR: 0x10,
  DUMP_FILTERED: 0x20,
  // GET requests
  ROOT: 0x100,
  MATCH: 0x200,
  ATOMIC: 0x400,
  DUMP: 0x300,
  // NEW requests
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
  // DELETE requests
  NONREC: 0x100,
  BULK: 0x200,
  // ACK messages (NLMSG_ERROR)
  CAPPED: 0x100,
  ACK_TLVS: 0x200,
} as const;

const UTF8_ENC = new TextEncoder();
const UTF8_DEC = new TextDecoder();

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = 0x3fff;

/** Extended-ack TLVs after an NLMSG_ERROR or NLMSG_DONE payload (enum nlmsgerr_attrs). */
export const NlmsgerrAttr = { MSG: 1, OFFS: 2, COOKIE: 3, POLICY: 4, MISS_TYPE: 5, MISS_NEST: 6 } as const;

/** One netlink message; `payload` is everything after the 16-byte header up to nlmsg_len. */
export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Uint8Array;
}

/** A decoded attribute: `type` is the raw 16 bits (flags included), `payload` excludes padding. */
export interface NlAttr {
  type: number;
  payload: Uint8Array;
}

/** What emitters accept: a raw attribute, a nest of further specs, or a u64 kept 8-byte aligned. */
export type NlAttrSpec =
  | NlAttr
  | { type: number; nest: NlAttrSpec[] }
  /** `nla_put_u64_64bit`: a PAD attribute of `padType` goes first when the value would sit unaligned. */
  | { type: number; u64: bigint; padType: number };

export function attrType(a: { type: number }): number {
  return a.type & NLA_TYPE_MASK;
}
export function attrIsNested(a: { type: number }): boolean {
  return (a.type & NLA_F_NESTED) !== 0;
}

/** A growable little-endian byte writer for building netlink messages. */
export class NlWriter {
  #buf = new Uint8Array(256);
  #len = 0;
  get length(): number {
    return this.#len;
  }
  #ensure(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < this.#len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.#buf.subarray(0, this.#len));
    this.#buf = nb;
  }
  u8(v: number): void {
    this.#ensure(1);
    this.#buf[this.#len++] = v & 0xff;
  }
  u16(v: number): void {
    this.#ensure(2);
    this.#buf[this.#len++] = v & 0xff;
    this.#buf[this.#len++] = (v >>> 8) & 0xff;
  }
  u32(v: number): void {
    this.#ensure(4);
    for (let i = 0; i < 4; i++) this.#buf[this.#len++] = (v >>> (8 * i)) & 0xff;
  }
  u64(v: bigint): void {
    const x = BigInt.asUintN(64, v);
    this.u32(Number(x & 0xffffffffn));
    this.u32(Number(x >> 32n));
  }
  bytes(b: Uint8Array): void {
    this.#ensure(b.length);
    this.#buf.set(b, this.#len);
    this.#len += b.length;
  }
  zeros(n: number): void {
    this.#ensure(n);
    this.#buf.fill(0, this.#len, this.#len + n);
    this.#len += n;
  }
  align4(): void {
    this.zeros(nlAlign(this.#len) - this.#len);
  }
  patchU16(off: number, v: number): void {
    this.#buf[off] = v & 0xff;
    this.#buf[off + 1] = (v >>> 8) & 0xff;
  }
  patchU32(off: number, v: number): void {
    for (let i = 0; i < 4; i++) this.#buf[off + i] = (v >>> (8 * i)) & 0xff;
  }
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }
  /** Drops everything written after `length` (nla_nest_cancel / nlmsg_trim). */
  truncate(length: number): void {
    if (length < this.#len) this.#len = Math.max(0, length);
  }

  /**
   * Opens a nest written in place (nla_nest_start_noflag; pass `type | NLA_F_NESTED` for the
   * flagged kind) and returns its start for `endNest`. For writers that must watch the nest grow,
   * such as a VF list that stops before nla_len would overflow.
   */
  beginNest(type: number): number {
    const start = this.#len;
    this.u16(0);
    this.u16(type);
    return start;
  }
  /** Bytes in the nest opened at `start` so far, header included. */
  nestLength(start: number): number {
    return this.#len - start;
  }
  /** Closes the nest opened at `start`: WIRE_BAD_LENGTH when it grew past 65535 bytes. */
  endNest(start: number): void {
    const len = this.#len - start;
    if (len > 0xffff) throw new WireError("WIRE_BAD_LENGTH", `attribute of ${len} bytes exceeds 65535`, { format: "netlink", value: len });
    this.patchU16(start, len);
  }

  /** Writes one attribute (and its padding); offsets for 64-bit alignment count from the writer's start. */
  attr(spec: NlAttrSpec): void {
    if ("u64" in spec) {
      // The u64 payload starts 4 bytes after the header; pad with an empty attribute if that is not 8-aligned.
      if ((this.#len + NLA_HDRLEN) % 8 !== 0) {
        this.u16(NLA_HDRLEN);
        this.u16(spec.padType);
      }
      this.u16(NLA_HDRLEN + 8);
      this.u16(spec.type);
      this.u64(spec.u64);
      return;
    }
    const start = this.#len;
    if (spec.type < 0 || spec.type > 0xffff || !Number.isInteger(spec.type)) throw new WireError("WIRE_BAD_VALUE", `attribute type ${spec.type} outside 0..65535`, { format: "netlink", value: spec.type });
    this.u16(0);
    this.u16(spec.type);
    if ("nest" in spec) for (const c of spec.nest) this.attr(c);
    else this.bytes(spec.payload);
    const len = this.#len - start;
    if (len > 0xffff) throw new WireError("WIRE_BAD_LENGTH", `attribute of ${len} bytes exceeds 65535`, { format: "netlink", value: len });
    this.patchU16(start, len);
    this.align4();
  }
  attrs(specs: readonly NlAttrSpec[]): void {
    for (const s of specs) this.attr(s);
  }
}

/** Attribute constructors (host byte order, as the kernel's nla_put_* write them). */
export const nla = {
  raw(type: number, payload: Uint8Array): NlAttr {
    return { type, payload };
  },
  flag(type: number): NlAttr {
    return { type, payload: new Uint8Array(0) };
  },
  u8(type: number, v: number): NlAttr {
    return { type, payload: Uint8Array.of(v & 0xff) };
  },
  u16(type: number, v: number): NlAttr {
    return { type, payload: Uint8Array.of(v & 0xff, (v >>> 8) & 0xff) };
  },
  u32(type: number, v: number): NlAttr {
    return { type, payload: Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff) };
  },
  i32(type: number, v: number): NlAttr {
    return nla.u32(type, v >>> 0);
  },
  /** A u64 without alignment padding (nla_put_u64 style); use u64Aligned for nla_put_u64_64bit. */
  u64(type: number, v: bigint): NlAttr {
    const x = BigInt.asUintN(64, v);
    const p = new Uint8Array(8);
    put32le(p, 0, Number(x & 0xffffffffn));
    put32le(p, 4, Number(x >> 32n));
    return { type, payload: p };
  },
  u64Aligned(type: number, v: bigint, padType: number): NlAttrSpec {
    return { type, u64: v, padType };
  },
  /** NUL-terminated string (NLA_NUL_STRING / what nla_put_string writes). */
  str(type: number, s: string): NlAttr {
    const e = UTF8_ENC.encode(s);
    const p = new Uint8Array(e.length + 1);
    p.set(e);
    return { type, payload: p };
  },
  nest(type: number, children: NlAttrSpec[], opts?: { nestedFlag?: boolean }): NlAttrSpec {
    return { type: opts?.nestedFlag === true ? type | NLA_F_NESTED : type, nest: children };
  },
};

/** Bytes of a list of attributes, each padded to 4. */
export function emitAttrs(specs: readonly NlAttrSpec[]): Uint8Array {
  const w = new NlWriter();
  w.attrs(specs);
  return w.finish();
}

/**
 * Splits a run of attributes. Throws WIRE_BAD_LENGTH for nla_len < 4 and WIRE_TRUNCATED for an
 * attribute running past the buffer; the last attribute's padding may be missing. Bytes too
 * few to hold a header at the end (fewer than 4) are ignored, as the kernel's nla_for_each does.
 */
export function parseAttrs(b: Uint8Array): NlAttr[] {
  const out: NlAttr[] = [];
  let o = 0;
  while (b.length - o >= NLA_HDRLEN) {
    const len = u16le(b, o);
    const type = u16le(b, o + 2);
    if (len < NLA_HDRLEN) throw new WireError("WIRE_BAD_LENGTH", `attribute length ${len} < 4`, { format: "netlink attribute", offset: o, value: len });
    needBytes("netlink attribute", b.length - o, len);
    out.push({ type, payload: b.subarray(o + NLA_HDRLEN, o + len) });
    o += nlAlign(len);
  }
  return out;
}

/** Attributes by type (flag bits masked off), the last of a type winning, as nla_parse keeps them. */
export function attrMap(attrs: readonly NlAttr[]): Map<number, NlAttr> {
  const m = new Map<number, NlAttr>();
  for (const a of attrs) m.set(a.type & NLA_TYPE_MASK, a);
  return m;
}

/** First attribute of `type` (flag bits ignored). */
export function findAttr(attrs: readonly NlAttr[], type: number): NlAttr | undefined {
  for (const a of attrs) if ((a.type & NLA_TYPE_MASK) === type) return a;
  return undefined;
}

function attrShort(a: NlAttr, need: number, what: string): never {
  throw new WireError("WIRE_BAD_LENGTH", `attribute ${attrType(a)} holds ${a.payload.length} bytes, ${what} needs ${need}`, { format: "netlink attribute", type: attrType(a), have: a.payload.length, need });
}
/** Typed readers; each throws WIRE_BAD_LENGTH when the payload is shorter than the type. */
export const nlaGet = {
  u8(a: NlAttr): number {
    if (a.payload.length < 1) attrShort(a, 1, "u8");
    return a.payload[0]!;
  },
  u16(a: NlAttr): number {
    if (a.payload.length < 2) attrShort(a, 2, "u16");
    return u16le(a.payload, 0);
  },
  u32(a: NlAttr): number {
    if (a.payload.length < 4) attrShort(a, 4, "u32");
    return u32le(a.payload, 0);
  },
  i32(a: NlAttr): number {
    return nlaGet.u32(a) | 0;
  },
  u64(a: NlAttr): bigint {
    if (a.payload.length < 8) attrShort(a, 8, "u64");
    return u64le(a.payload, 0);
  },
  /** Up to the first NUL (or the whole payload when there is none), as UTF-8. */
  str(a: NlAttr): string {
    const z = a.payload.indexOf(0);
    return UTF8_DEC.decode(z < 0 ? a.payload : a.payload.subarray(0, z));
  },
  nested(a: NlAttr): NlAttr[] {
    return parseAttrs(a.payload);
  },
};

/**
 * Splits a datagram into messages. Each needs a 16-byte header with nlmsg_len ≥ 16
 * (WIRE_BAD_LENGTH) inside the buffer (WIRE_TRUNCATED); messages start at NLMSG_ALIGN offsets.
 */
export function parseNlMessages(b: Uint8Array): NlMessage[] {
  const out: NlMessage[] = [];
  let o = 0;
  while (o < b.length) {
    needBytes("nlmsghdr", b.length - o, NLMSG_HDRLEN);
    const len = u32le(b, o);
    if (len < NLMSG_HDRLEN) throw new WireError("WIRE_BAD_LENGTH", `nlmsg_len ${len} < 16`, { format: "netlink", offset: o, value: len });
    needBytes("netlink message", b.length - o, len);
    out.push({ type: u16le(b, o + 4), flags: u16le(b, o + 6), seq: u32le(b, o + 8), pid: u32le(b, o + 12), payload: b.subarray(o + NLMSG_HDRLEN, o + len) });
    o += nlAlign(len);
  }
  return out;
}

/**
 * Splits a datagram as netlink_rcv_skb walks it: the messages before the first header that is
 * short, has nlmsg_len < 16 or runs past the datagram; that one and the rest are dropped
 * silently. For endpoints, which must not fail a whole datagram for a bad tail.
 */
export function parseNlMessagesPrefix(b: Uint8Array): NlMessage[] {
  const out: NlMessage[] = [];
  let o = 0;
  while (b.length - o >= NLMSG_HDRLEN) {
    const len = u32le(b, o);
    if (len < NLMSG_HDRLEN || len > b.length - o) break;
    out.push({ type: u16le(b, o + 4), flags: u16le(b, o + 6), seq: u32le(b, o + 8), pid: u32le(b, o + 12), payload: b.subarray(o + NLMSG_HDRLEN, o + len) });
    o += nlAlign(len);
  }
  return out;
}

/** The header fields of a message being emitted. */
export interface NlHeader {
  type: number;
  flags: number;
  seq: number;
  pid: number;
}

function headerField(f: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) throw new WireError("WIRE_BAD_VALUE", `nlmsghdr ${f} ${v} outside 0..${max}`, { format: "netlink", field: f, value: v });
}

/** Starts a message in a fresh writer; call `endNlMessage` to patch nlmsg_len. */
export function beginNlMessage(h: NlHeader): NlWriter {
  headerField("type", h.type, 0xffff);
  headerField("flags", h.flags, 0xffff);
  headerField("seq", h.seq, 0xffffffff);
  headerField("pid", h.pid, 0xffffffff);
  const w = new NlWriter();
  w.u32(0);
  w.u16(h.type);
  w.u16(h.flags);
  w.u32(h.seq);
  w.u32(h.pid);
  return w;
}

export function endNlMessage(w: NlWriter): Uint8Array {
  w.patchU32(0, w.length);
  w.align4();
  return w.finish();
}

/** One message: header then `payload` bytes, padded to 4. */
export function emitNlMessage(m: NlMessage): Uint8Array {
  const w = beginNlMessage(m);
  w.bytes(m.payload);
  return endNlMessage(w);
}

export function concatMessages(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += nlAlign(p.length);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += nlAlign(p.length);
  }
  return out;
}

/** Extended ack (NETLINK_EXT_ACK): the TLVs after an error or done payload. */
export interface NlExtAck {
  msg?: string;
  /** Byte offset, in the request, of the attribute that caused the error. */
  offset?: number;
  cookie?: Uint8Array;
  missType?: number;
  missNest?: number;
  /** Other TLVs (e.g. NLMSGERR_ATTR_POLICY), raw. */
  extra: NlAttr[];
}

function extAckSpecs(x: NlExtAck): NlAttrSpec[] {
  const s: NlAttrSpec[] = [];
  if (x.msg !== undefined) s.push(nla.str(NlmsgerrAttr.MSG, x.msg));
  if (x.offset !== undefined) s.push(nla.u32(NlmsgerrAttr.OFFS, x.offset));
  if (x.cookie !== undefined) s.push(nla.raw(NlmsgerrAttr.COOKIE, x.cookie));
  if (x.missType !== undefined) s.push(nla.u32(NlmsgerrAttr.MISS_TYPE, x.missType));
  if (x.missNest !== undefined) s.push(nla.u32(NlmsgerrAttr.MISS_NEST, x.missNest));
  s.push(...x.extra);
  return s;
}

function parseExtAck(b: Uint8Array): NlExtAck {
  const x: NlExtAck = { extra: [] };
  for (const a of parseAttrs(b)) {
    switch (attrType(a)) {
      case NlmsgerrAttr.MSG:
        x.msg = nlaGet.str(a);
        break;
      case NlmsgerrAttr.OFFS:
        x.offset = nlaGet.u32(a);
        break;
      case NlmsgerrAttr.COOKIE:
        x.cookie = a.payload.slice();
        break;
      case NlmsgerrAttr.MISS_TYPE:
        x.missType = nlaGet.u32(a);
        break;
      case NlmsgerrAttr.MISS_NEST:
        x.missNest = nlaGet.u32(a);
        break;
      default:
        x.extra.push(a);
    }
  }
  return x;
}

/**
 * NLMSG_ERROR (struct nlmsgerr): `error` is 0 for an ACK or a negative errno, then the request's
 * header and, unless `capped` (NLM_F_CAPPED), the request's payload; with NLM_F_ACK_TLVS the
 * extended-ack TLVs follow.
 */
export interface NlErrorRepr {
  error: number;
  request: NlMessage;
  capped: boolean;
  extAck?: NlExtAck;
}

export const NlErrorRepr = {
  parse(m: NlMessage): NlErrorRepr {
    if (m.type !== NlMsgType.ERROR) throw new WireError("WIRE_BAD_VALUE", `message type ${m.type} is not NLMSG_ERROR`, { format: "netlink", value: m.type });
    const p = m.payload;
    needBytes("nlmsgerr", p.length, 4 + NLMSG_HDRLEN);
    const error = u32le(p, 0) | 0;
    const origLen = u32le(p, 4);
    const capped = (m.flags & NlmF.CAPPED) !== 0;
    let tlvAt: number;
    let reqPayload: Uint8Array;
    if (capped) {
      reqPayload = new Uint8Array(0);
      tlvAt = 4 + NLMSG_HDRLEN;
    } else {
      if (origLen < NLMSG_HDRLEN) throw new WireError("WIRE_BAD_LENGTH", `nlmsgerr request length ${origLen} < 16`, { format: "netlink", value: origLen });
      needBytes("nlmsgerr request", p.length, 4 + origLen);
      reqPayload = p.subarray(4 + NLMSG_HDRLEN, 4 + origLen);
      tlvAt = 4 + nlAlign(origLen);
    }
    const request: NlMessage = { type: u16le(p, 8), flags: u16le(p, 10), seq: u32le(p, 12), pid: u32le(p, 16), payload: reqPayload };
    const r: NlErrorRepr = { error, request, capped };
    if ((m.flags & NlmF.ACK_TLVS) !== 0) r.extAck = parseExtAck(p.subarray(Math.min(tlvAt, p.length)));
    return r;
  },
  /** The whole NLMSG_ERROR message answering `request`, addressed with the request's seq and `pid`. */
  emit(r: NlErrorRepr, h: { seq: number; pid: number }): Uint8Array {
    const flags = (r.capped ? NlmF.CAPPED : 0) | (r.extAck !== undefined ? NlmF.ACK_TLVS : 0);
    const w = beginNlMessage({ type: NlMsgType.ERROR, flags, seq: h.seq, pid: h.pid });
    w.u32(r.error >>> 0);
    const reqPayload = r.capped ? new Uint8Array(0) : r.request.payload;
    w.u32(NLMSG_HDRLEN + r.request.payload.length);
    w.u16(r.request.type);
    w.u16(r.request.flags);
    w.u32(r.request.seq);
    w.u32(r.request.pid);
    w.bytes(reqPayload);
    w.align4();
    if (r.extAck !== undefined) w.attrs(extAckSpecs(r.extAck));
    return endNlMessage(w);
  },
};

/** NLMSG_DONE at the end of a dump: an int (0, or a negative errno when the dump failed). */
export interface NlDoneRepr {
  error: number;
  extAck?: NlExtAck;
}

export const NlDoneRepr = {
  parse(m: NlMessage): NlDoneRepr {
    if (m.type !== NlMsgType.DONE) throw new WireError("WIRE_BAD_VALUE", `message type ${m.type} is not NLMSG_DONE`, { format: "netlink", value: m.type });
    // Some senders put no int in DONE; read it as success.
    const error = m.payload.length >= 4 ? u32le(m.payload, 0) | 0 : 0;
    const r: NlDoneRepr = { error };
    if ((m.flags & NlmF.ACK_TLVS) !== 0) r.extAck = parseExtAck(m.payload.subarray(Math.min(4, m.payload.length)));
    return r;
  },
  emit(r: NlDoneRepr, h: { seq: number; pid: number }): Uint8Array {
    const w = beginNlMessage({ type: NlMsgType.DONE, flags: NlmF.MULTI | (r.extAck !== undefined ? NlmF.ACK_TLVS : 0), seq: h.seq, pid: h.pid });
    w.u32(r.error >>> 0);
    if (r.extAck !== undefined) w.attrs(extAckSpecs(r.extAck));
    return endNlMessage(w);
  },
};

/** The parts of a multi-part dump reply, up to NLMSG_DONE. */
export interface DumpResult {
  parts: NlMessage[];
  /** True when NLMSG_DONE was seen. */
  done: boolean;
  /** 0, or the negative errno from NLMSG_DONE or an NLMSG_ERROR. */
  error: number;
  /** Some part had NLM_F_DUMP_INTR: the dump was inconsistent and should be retried. */
  interrupted: boolean;
  extAck?: NlExtAck;
}

/** Collects the reply messages of a dump (from one or more datagrams), ignoring NOOPs. */
export function collectDump(messages: readonly NlMessage[]): DumpResult {
  const r: DumpResult = { parts: [], done: false, error: 0, interrupted: false };
  for (const m of messages) {
    if ((m.flags & NlmF.DUMP_INTR) !== 0) r.interrupted = true;
    if (m.type === NlMsgType.NOOP) continue;
    if (m.type === NlMsgType.DONE) {
      const d = NlDoneRepr.parse(m);
      r.done = true;
      r.error = d.error;
      if (d.extAck !== undefined) r.extAck = d.extAck;
      break;
    }
    if (m.type === NlMsgType.ERROR) {
      const e = NlErrorRepr.parse(m);
      r.done = true;
      r.error = e.error;
      if (e.extAck !== undefined) r.extAck = e.extAck;
      break;
    }
    r.parts.push(m);
  }
  return r;
}

/** A dump reply: each payload as one NLM_F_MULTI message of `type`, then NLMSG_DONE. */
export function emitDump(type: number, payloads: readonly Uint8Array[], h: { seq: number; pid: number }): Uint8Array {
  const msgs = payloads.map((payload) => emitNlMessage({ type, flags: NlmF.MULTI, seq: h.seq, pid: h.pid, payload }));
  msgs.push(NlDoneRepr.emit({ error: 0 }, h));
  return concatMessages(msgs);
}

/** Ends a dump whose messages were emitted already (each with NLM_F_MULTI): appends NLMSG_DONE. */
export function finishDump(messages: readonly Uint8Array[], h: { seq: number; pid: number }): Uint8Array {
  return concatMessages([...messages, NlDoneRepr.emit({ error: 0 }, h)]);
}

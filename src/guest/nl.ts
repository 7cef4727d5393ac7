/**
 * Netlink framing for the guest's rtnetlink endpoint (netlink-vf.md §2): nlmsghdr, nlattr with
 * 4-byte padding, host byte order (little-endian). Parsing checks every length and reports a
 * malformed message with `undefined` so the endpoint answers EINVAL instead of throwing.
 */
export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = 0x300;
export const NLM_F_CREATE = 0x400;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CAPPED = 0x100;

export function align4(n: number): number {
  return (n + 3) & ~3;
}

export interface NlMsg {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  readonly pid: number;
  /** The whole message, header included (for NLMSG_ERROR echoes). */
  readonly raw: Uint8Array;
  readonly payload: Uint8Array;
}

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Splits a datagram into messages as netlink_rcv_skb does: a header shorter than 16 bytes or a
 * length beyond the datagram ends processing silently.
 */
export function splitMessages(buf: Uint8Array): NlMsg[] {
  const out: NlMsg[] = [];
  let o = 0;
  while (o + NLMSG_HDRLEN <= buf.length) {
    const v = dv(buf.subarray(o));
    const len = v.getUint32(0, true);
    if (len < NLMSG_HDRLEN || o + len > buf.length) break;
    const raw = buf.subarray(o, o + len);
    out.push({ type: v.getUint16(4, true), flags: v.getUint16(6, true), seq: v.getUint32(8, true), pid: v.getUint32(12, true), raw, payload: raw.subarray(NLMSG_HDRLEN) });
    o += align4(len);
  }
  return out;
}

/** Attributes by type (flag bits masked off); the last one of a type wins, as nla_parse keeps it. */
export type AttrMap = Map<number, Uint8Array>;

/** Parses attributes; undefined when one's length is impossible (nla_parse: -EINVAL). */
export function parseAttrs(b: Uint8Array): AttrMap | undefined {
  const m: AttrMap = new Map();
  for (const a of attrList(b) ?? [undefined]) {
    if (a === undefined) return undefined;
    m.set(a.type, a.data);
  }
  return m;
}

/** Attributes in order (for nests that repeat a type, such as IFLA_VFINFO_LIST). */
export function attrList(b: Uint8Array): { type: number; data: Uint8Array }[] | undefined {
  const out: { type: number; data: Uint8Array }[] = [];
  let o = 0;
  while (o + NLA_HDRLEN <= b.length) {
    const v = dv(b.subarray(o));
    const len = v.getUint16(0, true);
    const type = v.getUint16(2, true) & 0x3fff;
    if (len < NLA_HDRLEN || o + len > b.length) return undefined;
    out.push({ type, data: b.subarray(o + NLA_HDRLEN, o + len) });
    o += align4(len);
  }
  return out;
}

export function getU32(d: Uint8Array | undefined): number | undefined {
  return d === undefined || d.length < 4 ? undefined : dv(d).getUint32(0, true);
}
export function getU8(d: Uint8Array | undefined): number | undefined {
  return d === undefined || d.length < 1 ? undefined : d[0];
}
export function getString(d: Uint8Array): string {
  const z = d.indexOf(0);
  return new TextDecoder().decode(z >= 0 ? d.subarray(0, z) : d);
}

/** Builds a message by appending attributes; nests via begin/end. */
export class NlBuilder {
  #buf = new Uint8Array(256);
  #len = 0;
  readonly #nests: number[] = [];

  #ensure(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < this.#len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.#buf.subarray(0, this.#len));
    this.#buf = b;
  }

  header(type: number, flags: number, seq: number, pid: number): this {
    this.#ensure(NLMSG_HDRLEN);
    const v = dv(this.#buf);
    v.setUint16(this.#len + 4, type, true);
    v.setUint16(this.#len + 6, flags, true);
    v.setUint32(this.#len + 8, seq, true);
    v.setUint32(this.#len + 12, pid, true);
    this.#len += NLMSG_HDRLEN;
    return this;
  }

  bytes(b: Uint8Array): this {
    const n = align4(b.length);
    this.#ensure(n);
    this.#buf.set(b, this.#len);
    this.#buf.fill(0, this.#len + b.length, this.#len + n);
    this.#len += n;
    return this;
  }

  attr(type: number, data: Uint8Array): this {
    const n = NLA_HDRLEN + data.length;
    this.#ensure(align4(n));
    const v = dv(this.#buf);
    v.setUint16(this.#len, n, true);
    v.setUint16(this.#len + 2, type, true);
    this.#buf.set(data, this.#len + NLA_HDRLEN);
    this.#buf.fill(0, this.#len + n, this.#len + align4(n));
    this.#len += align4(n);
    return this;
  }
  u8(type: number, v: number): this {
    return this.attr(type, Uint8Array.of(v & 0xff));
  }
  u32(type: number, v: number): this {
    const b = new Uint8Array(4);
    dv(b).setUint32(0, v >>> 0, true);
    return this.attr(type, b);
  }
  u64(type: number, v: bigint): this {
    const b = new Uint8Array(8);
    dv(b).setBigUint64(0, BigInt.asUintN(64, v), true);
    return this.attr(type, b);
  }
  str(type: number, s: string): this {
    const e = new TextEncoder().encode(s);
    const b = new Uint8Array(e.length + 1);
    b.set(e);
    return this.attr(type, b);
  }
  /** Opens a nest without NLA_F_NESTED (nla_nest_start_noflag, netlink-vf.md §4). */
  begin(type: number): this {
    this.#ensure(NLA_HDRLEN);
    this.#nests.push(this.#len);
    dv(this.#buf).setUint16(this.#len + 2, type, true);
    this.#len += NLA_HDRLEN;
    return this;
  }
  end(): this {
    const start = this.#nests.pop();
    if (start !== undefined) dv(this.#buf).setUint16(start, this.#len - start, true);
    return this;
  }
  /** Bytes written so far (a mark for `truncate`). */
  get length(): number {
    return this.#len;
  }
  /** Bytes in the innermost open nest so far, header included. */
  get nestLength(): number {
    const start = this.#nests[this.#nests.length - 1];
    return start === undefined ? 0 : this.#len - start;
  }
  /** Drops everything after `mark` (nla_nest_cancel for the part of a nest that does not fit). */
  truncate(mark: number, openNests: number): void {
    this.#len = Math.min(this.#len, mark);
    this.#nests.length = Math.min(this.#nests.length, openNests);
  }
  get openNests(): number {
    return this.#nests.length;
  }
  /** The finished message with nlmsg_len filled in. */
  finish(): Uint8Array {
    const out = this.#buf.slice(0, this.#len);
    dv(out).setUint32(0, this.#len, true);
    return out;
  }
}

export function u32le(v: number): Uint8Array {
  const b = new Uint8Array(4);
  dv(b).setUint32(0, v >>> 0, true);
  return b;
}

export function structU32s(...vals: number[]): Uint8Array {
  const b = new Uint8Array(vals.length * 4);
  const v = dv(b);
  vals.forEach((x, i) => v.setUint32(i * 4, x >>> 0, true));
  return b;
}

export function readU32At(b: Uint8Array, o: number): number {
  return dv(b).getUint32(o, true);
}
export function readI32At(b: Uint8Array, o: number): number {
  return dv(b).getInt32(o, true);
}

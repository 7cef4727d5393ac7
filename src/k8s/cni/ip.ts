import { isIPv4, isIPv6 } from "node:net";

/** IP text to bytes (4 or 16), or undefined if it is not an address. */
export function ipBytes(text: string): Uint8Array | undefined {
  if (isIPv4(text)) return Uint8Array.from(text.split(".").map(Number));
  if (!isIPv6(text)) return undefined;
  let t = text;
  const tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(t);
  if (v4 !== null) {
    tail.push(...v4[1]!.split(".").map(Number));
    t = t.slice(0, -v4[1]!.length) + "0:0";
  }
  const [head, rest] = t.split("::") as [string, string | undefined];
  const h = head === "" ? [] : head.split(":");
  const r = rest === undefined || rest === "" ? [] : rest.split(":");
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - r.length).fill("0"), ...r];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = Number.parseInt(g, 16);
    out[2 * i] = v >>> 8;
    out[2 * i + 1] = v & 0xff;
  });
  if (tail.length === 4) out.set(tail, 12);
  return out;
}

/** "10.1.0.5/24" → bytes and prefix length, or undefined. */
export function parseCidr(text: string): { addr: Uint8Array; prefixlen: number } | undefined {
  const i = text.indexOf("/");
  if (i < 0) return undefined;
  const addr = ipBytes(text.slice(0, i));
  const lenText = text.slice(i + 1);
  if (addr === undefined || !/^\d{1,3}$/.test(lenText)) return undefined;
  const prefixlen = Number(lenText);
  if (prefixlen > addr.length * 8) return undefined;
  return { addr, prefixlen };
}

/** The network address of a CIDR (host bits cleared), as the kernel wants a route destination. */
export function networkOf(addr: Uint8Array, prefixlen: number): Uint8Array {
  const out = addr.slice();
  for (let bit = prefixlen; bit < out.length * 8; bit++) out[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return out;
}

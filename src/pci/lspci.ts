import { PciError } from "./errors.js";
import type { PciFunction } from "./function.js";

export interface LspciAddress {
  readonly domain?: number;
  readonly bus: number;
  readonly device: number;
  readonly function: number;
}

const hex = (v: number, w: number): string => v.toString(16).padStart(w, "0");

/**
 * One function's configuration space in the text format of `lspci -xxxx` (pciutils): a header
 * line "[DDDD:]BB:DD.F <class>: <vendor>:<device>", then 16 bytes per line prefixed with the
 * offset, 256 or 4096 bytes, then a blank line. pciutils' `lspci -F <file>` reads this format
 * back (lib/dump.c) and decodes it as if it came from the hardware. Registers are dumped as the
 * guest would read them, so a VF shows 0xFFFF vendor and device IDs.
 */
export function lspciDump(fn: PciFunction, at: LspciAddress): string {
  const domain = at.domain ?? 0;
  if (!Number.isInteger(domain) || domain < 0 || domain > 0xffff) throw new PciError("PCI_BAD_ARGUMENT", `domain ${domain} is not 16 bits`);
  if (!Number.isInteger(at.bus) || at.bus < 0 || at.bus > 0xff) throw new PciError("PCI_BAD_ARGUMENT", `bus ${at.bus} is not 0..255`);
  if (!Number.isInteger(at.device) || at.device < 0 || at.device > 0x1f) throw new PciError("PCI_BAD_ARGUMENT", `device ${at.device} is not 0..31`);
  if (!Number.isInteger(at.function) || at.function < 0 || at.function > 7) throw new PciError("PCI_BAD_ARGUMENT", `function ${at.function} is not 0..7`);
  const bytes = fn.config.bytes();
  const addr = `${domain !== 0 ? `${hex(domain, 4)}:` : ""}${hex(at.bus, 2)}:${hex(at.device, 2)}.${at.function}`;
  const cls = fn.config.read(0x0a, 2);
  const lines = [`${addr} Class ${hex(cls, 4)}: Device ${hex(fn.vendorId, 4)}:${hex(fn.deviceId, 4)}`];
  const width = bytes.length > 256 ? 3 : 2;
  for (let off = 0; off < bytes.length; off += 16) {
    const row: string[] = [];
    for (let i = 0; i < 16; i++) row.push(hex(bytes[off + i] ?? 0, 2));
    lines.push(`${hex(off, width)}: ${row.join(" ")}`);
  }
  return `${lines.join("\n")}\n\n`;
}

/** Splits a routing-ID-style devfn into the address lspciDump wants. */
export function lspciAddress(bus: number, devfn: number, domain = 0): LspciAddress {
  return { domain, bus, device: (devfn >> 3) & 0x1f, function: devfn & 7 };
}

/** Every function a bus answers for (VFs its PF has not enabled excluded), concatenated in RID order. */
export function lspciDumpBus(bus: { functions(): { rid: number; fn: PciFunction }[] }, domain = 0): string {
  return bus.functions()
    .filter(({ fn }) => fn.present)
    .map(({ rid, fn }) => lspciDump(fn, lspciAddress(rid >> 8, rid & 0xff, domain)))
    .join("");
}

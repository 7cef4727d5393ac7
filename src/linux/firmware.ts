/**
 * fw_cfg files that make SeaBIOS 1.16 publish an MCFG table and reserve the ECAM window, so the
 * guest kernel uses MMCONFIG for extended configuration space (docs/linux.md "MMCONFIG").
 * v86 emulates i440FX/PIIX, for which SeaBIOS builds no MCFG of its own; SeaBIOS adds every
 * fw_cfg file named `acpi/*` to the RSDT, and builds its E820 map from `etc/e820`.
 */

/** Where the ECAM window sits: above guest RAM, below SeaBIOS's PCI memory allocations. */
export const ECAM_BASE = 0xb000_0000;
/**
 * Buses 0..15: bus 0 plus the secondary buses of the vmm's root ports. Each bus takes 1 MiB:
 * 32 devices × 8 functions × 4 KiB (PCI Express Base 6.0 §7.2.2, ECAM).
 */
export const ECAM_BUSES = 16;
export const ECAM_SIZE = ECAM_BUSES * 0x10_0000;

const E820_RAM = 1;
const E820_RESERVED = 2;

export interface E820Entry {
  readonly address: number;
  readonly length: number;
  readonly type: number;
}

/**
 * SeaBIOS's `etc/e820` format (src/fw/paravirt.c, struct e820_reservation): packed entries of
 * u64 address, u64 length, u32 type, little-endian. Linux checks that an MCFG window is E820
 * reserved before it trusts it (arch/x86/pci/mmconfig-shared.c, is_mmconf_reserved).
 */
export function e820File(memorySize: number): Uint8Array {
  const entries: E820Entry[] = [
    { address: 0, length: memorySize, type: E820_RAM },
    { address: ECAM_BASE, length: ECAM_SIZE, type: E820_RESERVED },
  ];
  const out = new Uint8Array(entries.length * 20);
  const view = new DataView(out.buffer);
  entries.forEach((e, i) => {
    view.setBigUint64(i * 20, BigInt(e.address), true);
    view.setBigUint64(i * 20 + 8, BigInt(e.length), true);
    view.setUint32(i * 20 + 16, e.type, true);
  });
  return out;
}

function ascii(view: Uint8Array, at: number, text: string, width: number): void {
  for (let i = 0; i < width; i++) view[at + i] = i < text.length ? text.charCodeAt(i) : 0x20;
}

/**
 * The ACPI MCFG table (PCI Firmware Specification 3.2 §4.1.2): the 36-byte system description
 * header, 8 reserved bytes, then one 16-byte allocation per segment/bus range
 * (u64 base, u16 segment, u8 start bus, u8 end bus, u32 reserved). All 60 bytes sum to 0.
 */
export function mcfgTable(base: number = ECAM_BASE, startBus = 0, endBus = ECAM_BUSES - 1): Uint8Array {
  const length = 36 + 8 + 16;
  const t = new Uint8Array(length);
  const view = new DataView(t.buffer);
  ascii(t, 0, "MCFG", 4);
  view.setUint32(4, length, true);
  t[8] = 1; // revision
  ascii(t, 10, "VPF   ", 6); // OEM ID
  ascii(t, 16, "VPFECAM ", 8); // OEM table ID
  view.setUint32(24, 1, true); // OEM revision
  ascii(t, 28, "VPF ", 4); // creator ID
  view.setUint32(32, 1, true); // creator revision
  view.setBigUint64(44, BigInt(base), true);
  view.setUint16(52, 0, true); // PCI segment group
  t[54] = startBus;
  t[55] = endBus;
  let sum = 0;
  for (const b of t) sum = (sum + b) & 0xff;
  t[9] = (0x100 - sum) & 0xff;
  return t;
}

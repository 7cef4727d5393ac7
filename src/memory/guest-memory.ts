/**
 * Guest-physical memory (DESIGN.md §2, issue 3 item 1).
 *
 * The machine's RAM is a list of regions of guest-physical address space, each backed by one
 * ArrayBuffer. Every access is bounds-checked: a guest address that does not lie entirely inside
 * one region throws `GuestMemoryError` with code `MEM_OUT_OF_RANGE`. Device code (virtqueues,
 * DMA) catches it and turns it into a guest-visible error (DEVICE_NEEDS_RESET, a dropped frame, a
 * counter); it never escapes the emulator. Addresses are JavaScript numbers (safe integers), as
 * everywhere in vpf (see src/pci/platform.ts).
 *
 * Adjacent regions given at construction are coalesced into one backing buffer, so an access
 * that crosses from one to the next behaves like it does on real RAM.
 *
 * A region may instead be backed by a caller's Uint8Array (`backing`): reads and writes go
 * straight to that array (zero copy), e.g. the RAM of an emulator that runs the guest's CPU, so
 * that device DMA and the guest's own loads and stores see the same bytes. `rebind` swaps the
 * array of a region for another of the same length (an emulator may move its RAM, e.g. when it
 * grows its heap or restores a snapshot). A backed region is never coalesced with a neighbour:
 * two buffers cannot be one, so an access that crosses its edge is out of range.
 */
import { VpfError } from "../base/index.js";

/** A guest-memory access that could not be served; device code turns it into a guest error. */
export class GuestMemoryError extends VpfError {}

export interface MemoryRegionSpec {
  /** Guest-physical start address. */
  readonly base: number;
  /** Length in bytes. */
  readonly size: number;
  /**
   * Bytes to use as this region's RAM instead of a fresh buffer (zero copy: the caller's array
   * and guest memory are the same bytes). Its length must equal `size`.
   */
  readonly backing?: Uint8Array;
}

interface Region {
  readonly base: number;
  readonly end: number; // exclusive
  // Mutable only for rebind; same shape whether backed or not, so the access path stays monomorphic.
  bytes: Uint8Array;
  dv: DataView;
}

/** Largest region we agree to back with one ArrayBuffer (keeps tests from eating the machine). */
export const MAX_REGION_BYTES = 2 ** 31;

export class GuestMemory {
  readonly #regions: Region[];
  #generation = 0;
  // The last region hit: almost every access stream stays inside one region.
  #last: Region;

  /** `new GuestMemory(size)` is one region at guest-physical 0. */
  constructor(layout: number | readonly MemoryRegionSpec[]) {
    const specs = typeof layout === "number" ? [{ base: 0, size: layout }] : [...layout];
    if (specs.length === 0) throw badLayout("guest memory needs at least one region", {});
    for (const s of specs) {
      if (!Number.isSafeInteger(s.base) || s.base < 0 || !Number.isSafeInteger(s.size) || s.size <= 0 || !Number.isSafeInteger(s.base + s.size)) {
        throw badLayout(`invalid region base=${s.base} size=${s.size}`, { base: s.base, size: s.size });
      }
    }
    for (const s of specs) {
      if (s.backing !== undefined) checkBacking(s.base, s.size, s.backing);
    }
    specs.sort((a, b) => a.base - b.base);
    // Coalesce adjacent unbacked regions and refuse overlaps.
    const merged: { base: number; size: number; backing: Uint8Array | undefined }[] = [];
    for (const s of specs) {
      const prev = merged[merged.length - 1];
      if (prev !== undefined && s.base < prev.base + prev.size) {
        throw badLayout(`regions overlap at 0x${s.base.toString(16)}`, { base: s.base });
      }
      if (prev !== undefined && s.base === prev.base + prev.size && prev.backing === undefined && s.backing === undefined) prev.size += s.size;
      else merged.push({ base: s.base, size: s.size, backing: s.backing });
    }
    this.#regions = merged.map((m) => {
      if (m.size > MAX_REGION_BYTES) throw badLayout(`region of ${m.size} bytes exceeds ${MAX_REGION_BYTES}`, { size: m.size });
      const bytes = m.backing ?? new Uint8Array(m.size);
      return { base: m.base, end: m.base + m.size, bytes, dv: dataViewOf(bytes) };
    });
    const first = this.#regions[0];
    if (first === undefined) throw badLayout("guest memory needs at least one region", {});
    this.#last = first;
  }

  /** The regions after coalescing, lowest first. */
  regions(): MemoryRegionSpec[] {
    return this.#regions.map((r) => ({ base: r.base, size: r.end - r.base }));
  }

  /**
   * Makes `backing` the RAM of the region that starts at `base` (zero copy, as
   * `MemoryRegionSpec.backing`); its length must equal the region's size. The old bytes are not
   * copied: the caller decides what the region holds. Views made earlier with `view` keep
   * pointing at the old bytes, so rebind before devices set up their rings.
   */
  rebind(base: number, backing: Uint8Array): void {
    const r = this.#regions.find((x) => x.base === base);
    if (r === undefined) throw badLayout(`no region starts at ${String(base)}`, { base });
    checkBacking(base, r.end - r.base, backing);
    r.bytes = backing;
    r.dv = dataViewOf(backing);
    this.#generation++;
  }

  /**
   * Counts rebinds. A device that keeps views of guest memory (a virtqueue's rings) compares it
   * with the value it saw when it made them and re-makes them after a rebind.
   */
  get generation(): number {
    return this.#generation;
  }

  /** Total bytes of RAM. */
  get size(): number {
    let n = 0;
    for (const r of this.#regions) n += r.end - r.base;
    return n;
  }

  /** True when [addr, addr+len) lies inside guest RAM. Never throws. */
  contains(addr: number, len: number): boolean {
    return this.#find(addr, len) !== undefined;
  }

  #find(addr: number, len: number): Region | undefined {
    const l = this.#last;
    if (addr >= l.base && addr + len <= l.end && len >= 0) return l;
    if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(len) || len < 0 || addr < 0) return undefined;
    for (const r of this.#regions) {
      if (addr >= r.base && addr + len <= r.end) {
        this.#last = r;
        return r;
      }
    }
    return undefined;
  }

  #region(addr: number, len: number): Region {
    const l = this.#last;
    // Fast path; the checks below reject NaN, fractions and negatives, which compare false here
    // except for fractions, hence the integer test.
    if (addr >= l.base && addr + len <= l.end && Number.isInteger(addr)) return l;
    const r = this.#find(addr, len);
    if (r === undefined || !Number.isInteger(addr)) throw outOfRange(addr, len);
    return r;
  }

  readU8(addr: number): number {
    const r = this.#region(addr, 1);
    return r.bytes[addr - r.base] ?? 0;
  }
  readU16(addr: number): number {
    const r = this.#region(addr, 2);
    return r.dv.getUint16(addr - r.base, true);
  }
  readU32(addr: number): number {
    const r = this.#region(addr, 4);
    return r.dv.getUint32(addr - r.base, true);
  }
  readU64(addr: number): bigint {
    const r = this.#region(addr, 8);
    return r.dv.getBigUint64(addr - r.base, true);
  }
  /**
   * A 64-bit little-endian value as a number; throws MEM_OUT_OF_RANGE if it is not a safe
   * integer (guest addresses in vpf are numbers, see platform.ts). Cheaper than readU64.
   */
  readU64Number(addr: number): number {
    const r = this.#region(addr, 8);
    const lo = r.dv.getUint32(addr - r.base, true);
    const hi = r.dv.getUint32(addr - r.base + 4, true);
    if (hi > 0x1fffff) {
      throw new GuestMemoryError("MEM_VALUE_TOO_LARGE", `64-bit value at 0x${addr.toString(16)} exceeds 2^53`, { details: { addr } });
    }
    return hi * 0x1_0000_0000 + lo;
  }

  writeU8(addr: number, v: number): void {
    const r = this.#region(addr, 1);
    r.bytes[addr - r.base] = v;
  }
  writeU16(addr: number, v: number): void {
    const r = this.#region(addr, 2);
    r.dv.setUint16(addr - r.base, v & 0xffff, true);
  }
  writeU32(addr: number, v: number): void {
    const r = this.#region(addr, 4);
    r.dv.setUint32(addr - r.base, v >>> 0, true);
  }
  writeU64(addr: number, v: bigint | number): void {
    const r = this.#region(addr, 8);
    r.dv.setBigUint64(addr - r.base, BigInt.asUintN(64, typeof v === "bigint" ? v : BigInt(v)), true);
  }

  /** A copy of len bytes at addr. */
  read(addr: number, len: number): Uint8Array {
    checkLen(addr, len);
    const r = this.#region(addr, len);
    return r.bytes.slice(addr - r.base, addr - r.base + len);
  }
  /** Copies bytes into guest memory at addr. */
  write(addr: number, bytes: Uint8Array): void {
    const r = this.#region(addr, bytes.length);
    r.bytes.set(bytes, addr - r.base);
  }
  /** Fills len bytes at addr with value. */
  fill(addr: number, len: number, value = 0): void {
    checkLen(addr, len);
    const r = this.#region(addr, len);
    r.bytes.fill(value, addr - r.base, addr - r.base + len);
  }
  /**
   * A zero-copy window over guest memory for device DMA: writes through it land in guest RAM.
   * The bounds are checked once here; the subarray cannot reach outside them.
   */
  view(addr: number, len: number): Uint8Array {
    checkLen(addr, len);
    const r = this.#region(addr, len);
    return r.bytes.subarray(addr - r.base, addr - r.base + len);
  }
}

function checkBacking(base: number, size: number, backing: Uint8Array): void {
  if (!(backing instanceof Uint8Array) || backing.length !== size) {
    const got = backing instanceof Uint8Array ? `${backing.length} bytes` : "not a Uint8Array";
    throw badLayout(`backing for the region at 0x${base.toString(16)} of ${size} bytes is ${got}`, { base, size });
  }
}

function dataViewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function checkLen(addr: number, len: number): void {
  if (!Number.isSafeInteger(len) || len < 0) throw outOfRange(addr, len);
}

function outOfRange(addr: number, len: number): GuestMemoryError {
  const a = typeof addr === "number" && Number.isFinite(addr) ? `0x${Math.trunc(addr).toString(16)}` : String(addr);
  return new GuestMemoryError("MEM_OUT_OF_RANGE", `guest access of ${len} byte(s) at ${a} is outside guest memory`, {
    details: { addr, len },
  });
}

function badLayout(message: string, details: Record<string, unknown>): GuestMemoryError {
  return new GuestMemoryError("MEM_BAD_LAYOUT", message, { details });
}

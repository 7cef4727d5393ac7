import { PciError } from "./errors.js";
import type { AccessWidth } from "./platform.js";

/** Size of a conventional PCI configuration space (PCI Local Bus 3.0 §6.1). */
export const CONFIG_SPACE_SIZE = 256;
/** Size of a PCI Express configuration space (PCIe Base §7.2.2: extended space up to 0xFFF). */
export const EXPRESS_CONFIG_SPACE_SIZE = 4096;

/** All ones of an access width: what an unanswered configuration or memory read returns. */
export function allOnes(width: number): number {
  return width === 1 ? 0xff : width === 2 ? 0xffff : 0xffff_ffff;
}

function isWidth(width: number): width is AccessWidth {
  return width === 1 || width === 2 || width === 4;
}

/**
 * One function's configuration space as data (QEMU's layout, STYLE.md): the register bytes, a
 * per-byte write mask, a per-byte write-1-to-clear mask and a map of bytes claimed by
 * capabilities. Every guest write goes through one generic masked store; behaviour runs after it.
 *
 * The init-time setters (setU8/U16/U32, setWmask, setW1c) write both the live registers and the
 * power-on image that restore() brings back on reset; poke/pokeWmask change only the live state
 * (a capability adjusting itself at run time, e.g. SR-IOV locking NumVFs while VF Enable is set).
 */
export class ConfigSpace {
  readonly size: number;
  readonly #data: Uint8Array;
  readonly #wmask: Uint8Array;
  readonly #w1c: Uint8Array;
  readonly #used: Uint8Array;
  readonly #resetData: Uint8Array;
  readonly #resetWmask: Uint8Array;
  readonly #resetW1c: Uint8Array;

  constructor(size: number) {
    if (size !== CONFIG_SPACE_SIZE && size !== EXPRESS_CONFIG_SPACE_SIZE) {
      throw new PciError("PCI_BAD_ARGUMENT", `configuration space is 256 or 4096 bytes, not ${size}`, { size });
    }
    this.size = size;
    this.#data = new Uint8Array(size);
    this.#wmask = new Uint8Array(size);
    this.#w1c = new Uint8Array(size);
    this.#used = new Uint8Array(size);
    this.#resetData = new Uint8Array(size);
    this.#resetWmask = new Uint8Array(size);
    this.#resetW1c = new Uint8Array(size);
  }

  /** True when [offset, offset + width) is a legal access inside this space. */
  inRange(offset: number, width: number): boolean {
    return Number.isInteger(offset) && isWidth(width) && offset >= 0 && offset + width <= this.size;
  }

  /** A little-endian read of 1, 2 or 4 bytes at any offset; out of range reads all ones. */
  read(offset: number, width: AccessWidth): number {
    if (!this.inRange(offset, width)) return allOnes(width);
    const d = this.#data;
    if (width === 1) return d[offset] ?? 0;
    if (width === 2) return (d[offset] ?? 0) | ((d[offset + 1] ?? 0) << 8);
    return ((d[offset] ?? 0) | ((d[offset + 1] ?? 0) << 8) | ((d[offset + 2] ?? 0) << 16) | ((d[offset + 3] ?? 0) << 24)) >>> 0;
  }

  /**
   * The generic masked write, byte by byte: cfg = (cfg & ~w) | (v & w); cfg &= ~(v & w1c).
   * Out of range (or a width other than 1, 2, 4) is dropped; returns whether anything was stored.
   */
  write(offset: number, width: AccessWidth, value: number): boolean {
    if (!this.inRange(offset, width)) return false;
    let v = Number.isFinite(value) ? value >>> 0 : 0;
    const d = this.#data, w = this.#wmask, c = this.#w1c;
    for (let i = 0; i < width; i++, v >>>= 8) {
      const o = offset + i;
      const b = v & 0xff;
      const wm = w[o] ?? 0, cm = c[o] ?? 0;
      d[o] = (((d[o] ?? 0) & ~wm) | (b & wm)) & ~(b & cm);
    }
    return true;
  }

  // ---- init-time setters: live registers and the power-on image ----

  setU8(offset: number, value: number): void {
    this.#set(this.#data, this.#resetData, offset, 1, value);
  }
  setU16(offset: number, value: number): void {
    this.#set(this.#data, this.#resetData, offset, 2, value);
  }
  setU32(offset: number, value: number): void {
    this.#set(this.#data, this.#resetData, offset, 4, value);
  }
  /** Which bits of [offset, offset + width) a write may change. */
  setWmask(offset: number, width: AccessWidth, mask: number): void {
    this.#set(this.#wmask, this.#resetWmask, offset, width, mask);
  }
  /** Which bits of [offset, offset + width) a written one clears (RW1C). */
  setW1c(offset: number, width: AccessWidth, mask: number): void {
    this.#set(this.#w1c, this.#resetW1c, offset, width, mask);
  }

  // ---- run-time changes: live state only ----

  /** Stores a value without masks (the device side changing its own register). */
  poke(offset: number, width: AccessWidth, value: number): void {
    this.#set(this.#data, undefined, offset, width, value);
  }
  pokeWmask(offset: number, width: AccessWidth, mask: number): void {
    this.#set(this.#wmask, undefined, offset, width, mask);
  }
  wmask(offset: number, width: AccessWidth): number {
    return readLe(this.#wmask, offset, width);
  }
  w1cMask(offset: number, width: AccessWidth): number {
    return readLe(this.#w1c, offset, width);
  }

  /** Claims [offset, offset + length) for a capability; false if any byte is already claimed. */
  claim(offset: number, length: number): boolean {
    if (!Number.isInteger(offset) || !Number.isInteger(length) || length <= 0 || offset < 0 || offset + length > this.size) return false;
    for (let i = offset; i < offset + length; i++) if (this.#used[i] !== 0) return false;
    this.#used.fill(1, offset, offset + length);
    return true;
  }
  isUsed(offset: number): boolean {
    return this.#used[offset] === 1;
  }

  /** Brings back the power-on registers and masks (a function-level reset). */
  restore(): void {
    this.#data.set(this.#resetData);
    this.#wmask.set(this.#resetWmask);
    this.#w1c.set(this.#resetW1c);
  }

  /** A copy of the current register bytes. */
  bytes(): Uint8Array {
    return this.#data.slice();
  }

  #set(live: Uint8Array, image: Uint8Array | undefined, offset: number, width: number, value: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset + width > this.size) {
      throw new PciError("PCI_BAD_ARGUMENT", `register ${offset}+${width} outside ${this.size}-byte configuration space`, { offset, width });
    }
    let v = value >>> 0;
    for (let i = 0; i < width; i++, v >>>= 8) {
      live[offset + i] = v & 0xff;
      if (image !== undefined) image[offset + i] = v & 0xff;
    }
  }
}

function readLe(a: Uint8Array, offset: number, width: number): number {
  let v = 0;
  for (let i = width - 1; i >= 0; i--) v = (v << 8) | (a[offset + i] ?? 0);
  return v >>> 0;
}

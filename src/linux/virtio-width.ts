import type { AccessWidth, PciPlatform } from "../pci/platform.js";
import { PCI_CAP_ID_VNDR, type PciBus, type PciFunction } from "../pci/index.js";
import { VIRTIO_PCI_CAP_COMMON_CFG } from "../virtio/constants.js";

/**
 * v86 performs a 16-bit MMIO read as two byte reads (its wasm imports only mmap_read8 and
 * mmap_read32), so a driver's 16-bit read of a virtio common-configuration field (num_queues,
 * queue_size, ...) reaches the device as two 8-bit reads. virtio 1.3 §4.1.3.1 requires natural
 * widths and vpf's transport answers a narrower access with 0, as it may. This wrapper repairs
 * the split on the way in: a byte read inside a common configuration structure (found through
 * the function's virtio vendor capability, §4.1.4.3) reads the whole field at its natural width
 * and returns the wanted byte. Common-configuration reads have no side effects, so reading a
 * field twice for its two bytes is safe; every other access passes through unchanged.
 */
export class VirtioSplitReadRepair implements PciPlatform {
  readonly #common = new WeakMap<PciFunction, { bar: number; offset: number; length: number } | null>();
  /** Byte reads widened to their field (for diagnostics and tests). */
  widened = 0;

  constructor(
    readonly inner: PciPlatform,
    private readonly bus: PciBus,
  ) {}

  get mmioWindow(): { readonly base: number; readonly size: number } {
    return this.inner.mmioWindow;
  }

  configRead(bus: number, devfn: number, offset: number, width: AccessWidth): number {
    return this.inner.configRead(bus, devfn, offset, width);
  }
  configWrite(bus: number, devfn: number, offset: number, width: AccessWidth, value: number): void {
    this.inner.configWrite(bus, devfn, offset, width, value);
  }
  mmioWrite(address: number, width: AccessWidth, value: number): void {
    this.inner.mmioWrite(address, width, value);
  }
  onMsi(handler: (address: number, data: number) => void): void {
    this.inner.onMsi(handler);
  }

  mmioRead(address: number, width: AccessWidth): number {
    if (width !== 1) return this.inner.mmioRead(address, width);
    const at = this.bus.resolveMmio(address);
    if (at === undefined) return this.inner.mmioRead(address, 1);
    const common = this.#commonOf(at.fn);
    if (common === undefined || at.bar !== common.bar || at.offset < common.offset || at.offset >= common.offset + common.length) {
      return this.inner.mmioRead(address, 1);
    }
    const field = commonField(at.offset - common.offset);
    if (field.width === 1) return this.inner.mmioRead(address, 1);
    this.widened++;
    const start = address - (at.offset - common.offset - field.start);
    const value = this.inner.mmioRead(start, field.width);
    return (value >>> (8 * (address - start))) & 0xff;
  }

  /** The common configuration structure of a virtio function, from its vendor capability. */
  #commonOf(fn: PciFunction): { bar: number; offset: number; length: number } | undefined {
    const cached = this.#common.get(fn);
    if (cached !== undefined) return cached ?? undefined;
    let found: { bar: number; offset: number; length: number } | null = null;
    // Walk the standard capability list (bounded: at most 48 entries fit in 192 bytes).
    let ptr = fn.configRead(0x34, 1) & 0xfc;
    for (let hops = 0; ptr >= 0x40 && hops < 48; hops++) {
      // struct virtio_pci_cap: cap_vndr, cap_next, cap_len, cfg_type, bar, id, padding[2], offset, length.
      if (fn.configRead(ptr, 1) === PCI_CAP_ID_VNDR && fn.configRead(ptr + 3, 1) === VIRTIO_PCI_CAP_COMMON_CFG) {
        found = { bar: fn.configRead(ptr + 4, 1), offset: fn.configRead(ptr + 8, 4), length: fn.configRead(ptr + 12, 4) };
        break;
      }
      ptr = fn.configRead(ptr + 1, 1) & 0xfc;
    }
    this.#common.set(fn, found);
    return found ?? undefined;
  }
}

/**
 * The field of struct virtio_pci_common_cfg holding byte `offset` (virtio 1.3 §4.1.4.3): 32-bit
 * feature selects and features at 0x00..0x0f, 16-bit fields at 0x10..0x13, device_status and
 * config_generation bytes at 0x14/0x15, 16-bit queue fields at 0x16..0x1f, the 64-bit queue
 * addresses as 32-bit halves at 0x20..0x37, then 16-bit fields (notify data, reset, admin queue).
 */
export function commonField(offset: number): { start: number; width: AccessWidth } {
  if (offset === 0x14 || offset === 0x15) return { start: offset, width: 1 };
  if (offset < 0x10 || (offset >= 0x20 && offset < 0x38)) return { start: offset & ~3, width: 4 };
  return { start: offset & ~1, width: 2 };
}

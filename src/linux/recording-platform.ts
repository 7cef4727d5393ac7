import type { AccessWidth, PciPlatform } from "../pci/platform.js";

/** One guest write that changed device-model state. */
export type PlatformWrite =
  | { readonly op: "config"; readonly bus: number; readonly devfn: number; readonly offset: number; readonly width: AccessWidth; readonly value: number }
  | { readonly op: "mmio"; readonly address: number; readonly width: AccessWidth; readonly value: number };

/**
 * A PciPlatform that forwards everything and, while recording, logs every write. v86 snapshots
 * hold the guest and v86's own devices, not the TypeScript device model; because a device model
 * is deterministic in the writes it receives (config reads have no side effects), replaying the
 * writes made up to the snapshot point into a power-on model rebuilds the state the guest saw.
 */
export class RecordingPlatform implements PciPlatform {
  private log: PlatformWrite[] | undefined = [];

  constructor(readonly inner: PciPlatform) {}

  get mmioWindow(): { readonly base: number; readonly size: number } {
    return this.inner.mmioWindow;
  }

  /** Stops recording and returns the writes logged so far. */
  stopRecording(): PlatformWrite[] {
    const log = this.log ?? [];
    this.log = undefined;
    return log;
  }

  configRead(bus: number, devfn: number, offset: number, width: AccessWidth): number {
    return this.inner.configRead(bus, devfn, offset, width);
  }

  configWrite(bus: number, devfn: number, offset: number, width: AccessWidth, value: number): void {
    this.log?.push({ op: "config", bus, devfn, offset, width, value });
    this.inner.configWrite(bus, devfn, offset, width, value);
  }

  mmioRead(address: number, width: AccessWidth): number {
    return this.inner.mmioRead(address, width);
  }

  mmioWrite(address: number, width: AccessWidth, value: number): void {
    this.log?.push({ op: "mmio", address, width, value });
    this.inner.mmioWrite(address, width, value);
  }

  onMsi(handler: (address: number, data: number) => void): void {
    this.inner.onMsi(handler);
  }
}

/** Applies logged writes to a platform in power-on state. */
export function replayWrites(platform: PciPlatform, log: readonly PlatformWrite[]): void {
  for (const w of log) {
    if (w.op === "config") platform.configWrite(w.bus, w.devfn, w.offset, w.width, w.value);
    else platform.mmioWrite(w.address, w.width, w.value);
  }
}

function isWidth(x: unknown): x is AccessWidth {
  return x === 1 || x === 2 || x === 4;
}

function isUint(x: unknown, max: number): x is number {
  return typeof x === "number" && Number.isSafeInteger(x) && x >= 0 && x <= max;
}

/** Validates a parsed log (it comes from a file on disk); undefined when malformed. */
export function parseWriteLog(raw: unknown): PlatformWrite[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  const out: PlatformWrite[] = [];
  for (const item of raw as unknown[]) {
    if (typeof item !== "object" || item === null) return undefined;
    const w = item as Record<string, unknown>;
    if (!isWidth(w["width"]) || !isUint(w["value"], 0xffff_ffff)) return undefined;
    if (w["op"] === "config" && isUint(w["bus"], 255) && isUint(w["devfn"], 255) && isUint(w["offset"], 4095)) {
      out.push({ op: "config", bus: w["bus"], devfn: w["devfn"], offset: w["offset"], width: w["width"], value: w["value"] });
    } else if (w["op"] === "mmio" && isUint(w["address"], Number.MAX_SAFE_INTEGER)) {
      out.push({ op: "mmio", address: w["address"], width: w["width"], value: w["value"] });
    } else {
      return undefined;
    }
  }
  return out;
}

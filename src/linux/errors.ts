import { VpfError } from "../base/index.js";

/**
 * Stable codes of the real-Linux harness (docs/linux.md "Errors"). Each one says what to do:
 * most come from a missing or changed environment (assets, v86), not from the guest.
 */
export const LinuxErrorCode = {
  /** The provisioned assets are missing: run `bash scripts/linux-assets.sh`. */
  assetsMissing: "LINUX_ASSETS_MISSING",
  /** A provisioned file no longer matches the SHA-256 recorded in its manifest. */
  assetChecksum: "LINUX_ASSET_CHECKSUM",
  /** The installed v86 lacks an internal the adapter relies on (version changed). */
  v86Incompatible: "LINUX_V86_INCOMPATIBLE",
  /** The guest did not print its ready marker in time. */
  bootTimeout: "LINUX_BOOT_TIMEOUT",
  /** A console command did not finish in time. */
  commandTimeout: "LINUX_COMMAND_TIMEOUT",
  /** A command run through LinuxGuest.read exited non-zero. */
  commandFailed: "LINUX_COMMAND_FAILED",
  /** The console is used after the guest stopped, or two commands overlap. */
  consoleState: "LINUX_CONSOLE_STATE",
  /** The platform puts a function where v86 already has one (v86's own would hide it). */
  devfnConflict: "LINUX_DEVFN_CONFLICT",
  /** An option out of range (e.g. a pool size). */
  badArgument: "LINUX_BAD_ARGUMENT",
  /** A command the console protocol cannot carry (NUL, a marker, too long). */
  badCommand: "LINUX_BAD_COMMAND",
  /** An initramfs entry that cpio newc cannot represent (name, mode, size). */
  cpioInvalid: "LINUX_CPIO_INVALID",
} as const;
export type LinuxErrorCodeValue = (typeof LinuxErrorCode)[keyof typeof LinuxErrorCode];

export class LinuxError extends VpfError {
  constructor(code: LinuxErrorCodeValue, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(code, message, options);
  }
}

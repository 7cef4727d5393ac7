import { LinuxError, LinuxErrorCode } from "./errors.js";

/**
 * A writer for the cpio "newc" format (magic 070701), the format the Linux kernel unpacks an
 * initramfs from (Documentation/driver-api/early-userspace/buffer-format.rst). Each entry is a
 * 110-byte ASCII header (the magic and 13 fields of 8 hex digits), the NUL-terminated name padded
 * to a multiple of 4 bytes, then the data padded to a multiple of 4; a `TRAILER!!!` entry ends it.
 */
export type CpioEntry =
  | { readonly kind: "dir"; readonly name: string; readonly mode?: number }
  | { readonly kind: "file"; readonly name: string; readonly data: Uint8Array; readonly mode?: number }
  | { readonly kind: "symlink"; readonly name: string; readonly target: string }
  | { readonly kind: "chardev"; readonly name: string; readonly major: number; readonly minor: number; readonly mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const HEADER_LEN = 110;
const TRAILER = "TRAILER!!!";
/** The kernel's cpio parser caps names at PATH_MAX (init/initramfs.c: N_ALIGN, do_header). */
const PATH_MAX = 4096;

function hex8(value: number): string {
  return value.toString(16).padStart(8, "0");
}

function pad4(length: number): number {
  return (4 - (length % 4)) % 4;
}

function checkName(name: string): void {
  // Names are relative paths without NULs; the kernel strips nothing, so "/init" would be wrong.
  if (name.length === 0 || name.length >= PATH_MAX || name.includes("\0") || name.startsWith("/")) {
    throw new LinuxError(LinuxErrorCode.cpioInvalid, `cpio: invalid entry name ${JSON.stringify(name)}`, { details: { name } });
  }
}

function checkPerm(name: string, mode: number): number {
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw new LinuxError(LinuxErrorCode.cpioInvalid, `cpio: invalid permission bits for ${name}`, { details: { name, mode } });
  }
  return mode;
}

function checkDevice(name: string, n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) {
    throw new LinuxError(LinuxErrorCode.cpioInvalid, `cpio: invalid device number for ${name}`, { details: { name, n } });
  }
  return n;
}

/** Serialises entries in the given order (a directory must come before what it contains). */
export function writeCpioNewc(entries: readonly CpioEntry[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  const enc = new TextEncoder();
  let ino = 1;
  const push = (name: string, mode: number, data: Uint8Array, rdevMajor: number, rdevMinor: number, nlink: number): void => {
    const nameBytes = enc.encode(name + "\0");
    const fields = [
      ino++, // c_ino
      mode, // c_mode
      0, // c_uid
      0, // c_gid
      nlink, // c_nlink
      0, // c_mtime: fixed, so the archive (and the snapshot key) is reproducible
      data.length, // c_filesize
      0, // c_devmajor
      0, // c_devminor
      rdevMajor, // c_rdevmajor
      rdevMinor, // c_rdevminor
      nameBytes.length, // c_namesize, including the NUL
      0, // c_check: always 0 in newc (070702 would carry a checksum)
    ];
    const header = "070701" + fields.map(hex8).join("");
    chunks.push(enc.encode(header));
    chunks.push(nameBytes);
    chunks.push(new Uint8Array(pad4(HEADER_LEN + nameBytes.length)));
    chunks.push(data);
    chunks.push(new Uint8Array(pad4(data.length)));
  };
  for (const e of entries) {
    checkName(e.name);
    if (e.name === TRAILER) {
      throw new LinuxError(LinuxErrorCode.cpioInvalid, "cpio: the trailer name is reserved", { details: { name: e.name } });
    }
    switch (e.kind) {
      case "dir":
        push(e.name, S_IFDIR | checkPerm(e.name, e.mode ?? 0o755), new Uint8Array(0), 0, 0, 2);
        break;
      case "file":
        if (e.data.length > 0xffffffff) {
          throw new LinuxError(LinuxErrorCode.cpioInvalid, `cpio: ${e.name} is larger than 4 GiB`, { details: { name: e.name } });
        }
        push(e.name, S_IFREG | checkPerm(e.name, e.mode ?? 0o644), e.data, 0, 0, 1);
        break;
      case "symlink":
        if (e.target.length === 0 || e.target.includes("\0")) {
          throw new LinuxError(LinuxErrorCode.cpioInvalid, `cpio: invalid symlink target for ${e.name}`, { details: { name: e.name } });
        }
        push(e.name, S_IFLNK | 0o777, enc.encode(e.target), 0, 0, 1);
        break;
      case "chardev":
        push(e.name, S_IFCHR | checkPerm(e.name, e.mode ?? 0o600), new Uint8Array(0), checkDevice(e.name, e.major), checkDevice(e.name, e.minor), 1);
        break;
    }
  }
  push(TRAILER, 0, new Uint8Array(0), 0, 0, 1);
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** One parsed entry, for tests and for inspecting an archive. */
export interface CpioParsed {
  readonly name: string;
  readonly mode: number;
  readonly data: Uint8Array;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
}

/** Reads a newc archive up to its trailer; any malformed header is LINUX_CPIO_INVALID. */
export function readCpioNewc(bytes: Uint8Array): CpioParsed[] {
  const dec = new TextDecoder();
  const out: CpioParsed[] = [];
  let at = 0;
  for (;;) {
    if (at + HEADER_LEN > bytes.length) throw new LinuxError(LinuxErrorCode.cpioInvalid, "cpio: truncated header", { details: { at } });
    const header = dec.decode(bytes.subarray(at, at + HEADER_LEN));
    if (!header.startsWith("070701")) throw new LinuxError(LinuxErrorCode.cpioInvalid, "cpio: bad magic", { details: { at } });
    const field = (i: number): number => {
      const text = header.slice(6 + i * 8, 14 + i * 8);
      if (!/^[0-9a-fA-F]{8}$/.test(text)) throw new LinuxError(LinuxErrorCode.cpioInvalid, "cpio: bad header field", { details: { at, i } });
      return parseInt(text, 16);
    };
    const mode = field(1);
    const size = field(6);
    const rdevMajor = field(9);
    const rdevMinor = field(10);
    const nameSize = field(11);
    const nameAt = at + HEADER_LEN;
    if (nameSize === 0 || nameAt + nameSize > bytes.length) throw new LinuxError(LinuxErrorCode.cpioInvalid, "cpio: truncated name", { details: { at } });
    const name = dec.decode(bytes.subarray(nameAt, nameAt + nameSize - 1));
    const dataAt = nameAt + nameSize + pad4(HEADER_LEN + nameSize);
    if (dataAt + size > bytes.length) throw new LinuxError(LinuxErrorCode.cpioInvalid, "cpio: truncated data", { details: { at } });
    if (name === TRAILER) return out;
    out.push({ name, mode, data: bytes.slice(dataAt, dataAt + size), rdevMajor, rdevMinor });
    at = dataAt + size + pad4(size);
  }
}

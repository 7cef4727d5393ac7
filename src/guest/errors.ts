/**
 * Errors of the model guest kernel. Everything a user of the guest can trigger (a sysfs write, an
 * rtnetlink message, an `ip`-style call) fails the way Linux fails it: with an errno. `SysError`
 * carries the errno name as its stable code and the number the kernel would return (negated in
 * NLMSG_ERROR). The base layer's `Errno` table lacks a few values sysfs and rtnetlink need
 * (EACCES, ENOTDIR, ...), so the guest keeps its own superset here.
 */
import { Errno, KernelError, VpfError } from "../base/index.js";

export const GuestErrno = {
  ...Errno,
  ESRCH: 3,
  EBADF: 9,
  EAGAIN: 11,
  EACCES: 13,
  ENOTDIR: 20,
  EISDIR: 21,
  ENOSYS: 38,
  ELOOP: 40,
  EPROTONOSUPPORT: 93,
  EAFNOSUPPORT: 97,
  EADDRNOTAVAIL: 99,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ETIMEDOUT: 110,
  EHOSTUNREACH: 113,
} as const;
export type GuestErrnoName = keyof typeof GuestErrno;

const text: Partial<Record<GuestErrnoName, string>> = {
  EPERM: "Operation not permitted",
  ENOENT: "No such file or directory",
  ESRCH: "No such process",
  EIO: "Input/output error",
  EBADF: "Bad file descriptor",
  EAGAIN: "Resource temporarily unavailable",
  ENOMEM: "Cannot allocate memory",
  EACCES: "Permission denied",
  EBUSY: "Device or resource busy",
  EEXIST: "File exists",
  ENODEV: "No such device",
  ENOTDIR: "Not a directory",
  EISDIR: "Is a directory",
  EINVAL: "Invalid argument",
  ENOSPC: "No space left on device",
  ERANGE: "Numerical result out of range",
  ENOSYS: "Function not implemented",
  ELOOP: "Too many levels of symbolic links",
  EPROTONOSUPPORT: "Protocol not supported",
  EOPNOTSUPP: "Operation not supported",
  EAFNOSUPPORT: "Address family not supported by protocol",
  EADDRINUSE: "Address already in use",
  EADDRNOTAVAIL: "Cannot assign requested address",
  ENETDOWN: "Network is down",
  ENETUNREACH: "Network is unreachable",
  ENOBUFS: "No buffer space available",
  ETIMEDOUT: "Connection timed out",
  EHOSTUNREACH: "No route to host",
};

/** A call into the model guest refused with a Linux errno; `code` is the errno name. */
export class SysError extends VpfError {
  readonly errno: GuestErrnoName;
  /** The positive errno number (`-errno` is what the kernel returns). */
  readonly errnoValue: number;
  constructor(errno: GuestErrnoName, message?: string, details?: Record<string, unknown>) {
    super(errno, message ?? text[errno] ?? errno, details === undefined ? undefined : { details });
    this.errno = errno;
    this.errnoValue = GuestErrno[errno];
  }

  /**
   * The same refusal as the base layer's KernelError when its errno table knows the name (the
   * k8s guest endpoint maps KernelErrors to errno names); otherwise this error itself.
   */
  toKernelError(): VpfError {
    const name = this.errno;
    if (isBaseErrno(name)) return new KernelError(name, this.message, { cause: this, details: { ...this.details } });
    return this;
  }
}

function isBaseErrno(name: string): name is keyof typeof Errno {
  return Object.prototype.hasOwnProperty.call(Errno, name);
}

export function sysErr(errno: GuestErrnoName, message?: string, details?: Record<string, unknown>): SysError {
  return new SysError(errno, message, details);
}

/** The errno name for a positive errno number, or undefined. */
export function guestErrnoName(value: number): GuestErrnoName | undefined {
  for (const [k, v] of Object.entries(GuestErrno)) if (v === value) return k as GuestErrnoName;
  return undefined;
}

/**
 * Every error vpf throws on purpose is a VpfError with a stable code (STYLE.md: undici's
 * UND_ERR_* codes). Callers branch on `code`, never on the message. Each layer lists its codes
 * in its docs/<layer>.md; test/docs.test.ts checks that every code thrown in src/ is documented.
 */
export class VpfError extends Error {
  readonly code: string;
  /** Structured details for programs (a field name, an offset, a limit). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options?.details ?? {};
  }
}

/** Linux errno values, for the facades that answer with the kernel's error codes. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  ENOMEM: 12,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  EOPNOTSUPP: 95,
  EADDRINUSE: 98,
  ENOBUFS: 105,
} as const;
export type ErrnoName = keyof typeof Errno;

const errnoText: Record<ErrnoName, string> = {
  EPERM: "Operation not permitted",
  ENOENT: "No such file or directory",
  EIO: "Input/output error",
  E2BIG: "Argument list too long",
  ENOMEM: "Cannot allocate memory",
  EBUSY: "Device or resource busy",
  EEXIST: "File exists",
  ENODEV: "No such device",
  EINVAL: "Invalid argument",
  ENOSPC: "No space left on device",
  ERANGE: "Numerical result out of range",
  EOPNOTSUPP: "Operation not supported",
  EADDRINUSE: "Address already in use",
  ENOBUFS: "No buffer space available",
};

/** strerror(3) text for an errno name, as glibc prints it. */
export function strerror(name: ErrnoName): string {
  return errnoText[name];
}

export function errnoName(value: number): ErrnoName | undefined {
  for (const [k, v] of Object.entries(Errno)) if (v === value) return k as ErrnoName;
  return undefined;
}

/**
 * An operation refused the way the Linux kernel refuses it: code is the errno name
 * (EBUSY, ERANGE, ...), so a facade can hand it to a shell as "write error: Device or resource busy".
 */
export class KernelError extends VpfError {
  readonly errno: ErrnoName;
  constructor(errno: ErrnoName, message?: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(errno, message ?? strerror(errno), options);
    this.errno = errno;
  }
}

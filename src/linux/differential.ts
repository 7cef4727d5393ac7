import { Errno, VpfError, strerror, type ErrnoName } from "../base/index.js";
import type { LinuxGuest } from "./guest.js";

/**
 * The sysfs side of a guest kernel as a user sees it, for differential tests: the same script
 * of reads and writes runs against the real kernel (through its shell) and against the model
 * guest (src/guest), and every value or errno must match.
 */
export type SysfsOutcome = { readonly ok: string } | { readonly errno: string };

export interface SysfsDriver {
  read(path: string): Promise<SysfsOutcome>;
  write(path: string, data: string): Promise<SysfsOutcome>;
  readlink(path: string): Promise<SysfsOutcome>;
  list(path: string): Promise<SysfsOutcome>;
}

export type SysfsStep =
  | { readonly op: "read"; readonly path: string }
  | { readonly op: "write"; readonly path: string; readonly data: string }
  | { readonly op: "readlink"; readonly path: string }
  | { readonly op: "list"; readonly path: string; readonly prefix?: string };

/** Runs a script; each outcome is labelled with its step. */
export async function runSysfsScript(driver: SysfsDriver, steps: readonly SysfsStep[]): Promise<string[]> {
  const out: string[] = [];
  for (const s of steps) {
    let r: SysfsOutcome;
    if (s.op === "read") r = await driver.read(s.path);
    else if (s.op === "write") r = await driver.write(s.path, s.data);
    else if (s.op === "readlink") r = await driver.readlink(s.path);
    else {
      r = await driver.list(s.path);
      const prefix = s.prefix;
      if ("ok" in r && prefix !== undefined) {
        r = { ok: r.ok.split("\n").filter((n) => n.startsWith(prefix)).join("\n") };
      }
    }
    const label = s.op === "write" ? `write ${JSON.stringify(s.data)} > ${s.path}` : `${s.op} ${s.path}`;
    out.push(`${label} => ${"ok" in r ? JSON.stringify(r.ok) : r.errno}`);
  }
  return out;
}

/** strerror texts sysfs users meet that the base Errno table lacks (glibc wording). */
const EXTRA_ERRNO_TEXT: Readonly<Record<string, string>> = {
  EACCES: "Permission denied",
  EISDIR: "Is a directory",
  ENOTDIR: "Not a directory",
  EAGAIN: "Resource temporarily unavailable",
  ENOSYS: "Function not implemented",
};

/** The errno whose strerror text a busybox error message carries. */
export function errnoFromMessage(message: string): string {
  for (const name of Object.keys(Errno) as ErrnoName[]) if (message.includes(strerror(name))) return name;
  for (const [name, text] of Object.entries(EXTRA_ERRNO_TEXT)) if (message.includes(text)) return name;
  return `unknown(${message.trim()})`;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The real kernel through busybox: cat, echo -n >, readlink, ls. */
export function realSysfs(guest: LinuxGuest): SysfsDriver {
  const run = async (command: string, trim: boolean): Promise<SysfsOutcome> => {
    const r = await guest.run(command);
    if (r.status !== 0) return { errno: errnoFromMessage(r.output) };
    return { ok: trim ? r.output.replace(/\n$/, "") : r.output };
  };
  return {
    read: (path) => run(`cat ${shellQuote(path)}`, true),
    // ash's builtin echo reports a failed write(2) as "write error: <strerror>"; printf does not.
    write: (path, data) => run(`echo -n ${shellQuote(data)} > ${shellQuote(path)}`, false),
    // readlink without a target prints nothing and exits 1 on a missing file; test -e tells ENOENT.
    readlink: (path) => run(`test -L ${shellQuote(path)} || { echo 'No such file or directory' >&2; exit 1; }; readlink ${shellQuote(path)}`, true),
    list: (path) => run(`ls -1 ${shellQuote(path)} | sort`, true),
  };
}

/** The minimal view of the model guest kernel the driver needs. */
export interface ModelSysfs {
  sysfsRead(path: string): string;
  sysfsWrite(path: string, data: string): void;
  sysfsReadlink(path: string): string;
  sysfsList(path: string): string[];
}

/** The model guest: its sysfs calls, errors as errno names. */
export function modelSysfs(kernel: ModelSysfs): SysfsDriver {
  const wrap = (fn: () => string): Promise<SysfsOutcome> => {
    try {
      return Promise.resolve({ ok: fn() });
    } catch (e) {
      if (e instanceof VpfError) return Promise.resolve({ errno: e.code });
      throw e;
    }
  };
  return {
    read: (path) => wrap(() => kernel.sysfsRead(path).replace(/\n$/, "")),
    write: (path, data) =>
      wrap(() => {
        kernel.sysfsWrite(path, data);
        return "";
      }),
    readlink: (path) => wrap(() => kernel.sysfsReadlink(path)),
    list: (path) => wrap(() => [...kernel.sysfsList(path)].sort().join("\n")),
  };
}

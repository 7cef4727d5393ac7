import { readFile, readlink, readdir, writeFile } from "node:fs/promises";
import { Errno, KernelError, type ErrnoName } from "../base/index.js";
import { K8sError } from "./errors.js";

/**
 * The three (four) sysfs operations the device plugin and the CNI plugin need. Paths are
 * absolute guest paths ("/sys/bus/pci/devices/0000:00:04.0/sriov_numvfs"); a missing file is a
 * KernelError with code ENOENT, as open(2) would say. Implementations: a directory on the host
 * (DirSysfs, for a fake tree in a temp dir), an in-memory tree (MemorySysfs), and the guest
 * endpoint client (which reaches the guest kernel's sysfs).
 */
export interface SysfsReader {
  readFile(path: string): Promise<string>;
  /** The link's target text, as readlink(2) returns it (usually relative). */
  readlink(path: string): Promise<string>;
  /** Entry names of a directory, sorted. */
  listDir(path: string): Promise<string[]>;
}

export interface Sysfs extends SysfsReader {
  writeFile(path: string, data: string): Promise<void>;
}

/** Splits an absolute path into components, resolving "." and ".." lexically. */
export function pathParts(path: string): string[] {
  if (!path.startsWith("/")) throw new KernelError("EINVAL", `not an absolute path: ${path}`);
  const out: string[] = [];
  for (const p of path.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") out.pop();
    else out.push(p);
  }
  return out;
}

export function joinPath(...parts: string[]): string {
  return "/" + pathParts("/" + parts.join("/")).join("/");
}

/** The absolute path a symlink at `linkPath` with text `target` points at. */
export function resolveLinkTarget(linkPath: string, target: string): string {
  if (target.startsWith("/")) return joinPath(target);
  const parts = pathParts(linkPath);
  parts.pop();
  return joinPath(...parts, target);
}

/** The last component of a path or link text, relative or absolute. */
export function basename(path: string): string {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  return parts[parts.length - 1] ?? "";
}

/** A guest sysfs laid out under a directory of the host file system ("/sys/x" is `${root}/sys/x`). */
export class DirSysfs implements Sysfs {
  constructor(readonly root: string) {}

  #host(path: string): string {
    return this.root + joinPath(path);
  }

  async readFile(path: string): Promise<string> {
    return wrapFs(() => readFile(this.#host(path), "utf8"));
  }
  async readlink(path: string): Promise<string> {
    return wrapFs(() => readlink(this.#host(path)));
  }
  async listDir(path: string): Promise<string[]> {
    return (await wrapFs(() => readdir(this.#host(path)))).sort();
  }
  async writeFile(path: string, data: string): Promise<void> {
    // sysfs attributes exist before they are written; writing never creates a file.
    await wrapFs(() => readFile(this.#host(path)));
    await wrapFs(() => writeFile(this.#host(path), data));
  }
}

async function wrapFs<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    throw new KernelError(isErrnoName(code) ? code : "EIO", undefined, { cause: e });
  }
}

function isErrnoName(code: unknown): code is ErrnoName {
  return typeof code === "string" && Object.hasOwn(Errno, code);
}

type MemNode =
  | { kind: "dir"; entries: Map<string, MemNode> }
  | { kind: "file"; data: string; onWrite?: (data: string) => void }
  | { kind: "link"; target: string };

const MAX_LINK_HOPS = 40; // ELOOP limit of Linux path walks (MAXSYMLINKS)

/**
 * An in-memory sysfs tree with directories, files and symlinks; symlinks in the middle of a
 * path are followed as the kernel's path walk does, which the virtio layout relies on
 * (`.../<VF>/physfn/virtio0/net`). Test double and building block of the fake guest kernel.
 */
export class MemorySysfs implements Sysfs {
  #root: MemNode = { kind: "dir", entries: new Map() };

  /** Creates a directory and its parents. */
  mkdir(path: string): void {
    let n = this.#root;
    for (const p of pathParts(path)) {
      if (n.kind !== "dir") throw new KernelError("EEXIST", `${path}: a component is not a directory`);
      let next = n.entries.get(p);
      if (next === undefined) {
        next = { kind: "dir", entries: new Map() };
        n.entries.set(p, next);
      }
      n = next;
    }
  }

  /** Creates or replaces a file; `onWrite` runs on writeFile (a store attribute's handler). */
  putFile(path: string, data: string, onWrite?: (data: string) => void): void {
    const [dir, name] = this.#parent(path, true);
    dir.entries.set(name, onWrite === undefined ? { kind: "file", data } : { kind: "file", data, onWrite });
  }

  putLink(path: string, target: string): void {
    const [dir, name] = this.#parent(path, true);
    dir.entries.set(name, { kind: "link", target });
  }

  /** Removes a file, link or whole directory; absent paths are ignored. */
  remove(path: string): void {
    try {
      const [dir, name] = this.#parent(path, false);
      dir.entries.delete(name);
    } catch {
      // nothing to remove
    }
  }

  exists(path: string): boolean {
    try {
      this.#walk(path, true);
      return true;
    } catch {
      return false;
    }
  }

  #parent(path: string, create: boolean): [Extract<MemNode, { kind: "dir" }>, string] {
    const parts = pathParts(path);
    const name = parts.pop();
    if (name === undefined) throw new KernelError("EINVAL", "no parent of /");
    const dirPath = "/" + parts.join("/");
    if (create) this.mkdir(dirPath);
    const dir = this.#walk(dirPath, true).node;
    if (dir.kind !== "dir") throw new KernelError("ENOENT");
    return [dir, name];
  }

  /** Walks a path, following links in every component (and in the last one if followLast). */
  #walk(path: string, followLast: boolean): { node: MemNode; path: string } {
    let hops = 0;
    let todo = pathParts(path);
    let done: string[] = [];
    let n: MemNode = this.#root;
    while (todo.length > 0) {
      const p = todo[0]!;
      todo = todo.slice(1);
      if (n.kind !== "dir") throw new KernelError("ENOENT");
      const next = n.entries.get(p);
      if (next === undefined) throw new KernelError("ENOENT", `${joinPath(...done, p)}: No such file or directory`);
      if (next.kind === "link" && (todo.length > 0 || followLast)) {
        if (++hops > MAX_LINK_HOPS) throw new KernelError("EINVAL", `${path}: too many levels of symbolic links`);
        const target = resolveLinkTarget(joinPath(...done, p), next.target);
        todo = [...pathParts(target), ...todo];
        done = [];
        n = this.#root;
        continue;
      }
      done.push(p);
      n = next;
    }
    return { node: n, path: "/" + done.join("/") };
  }

  /** The canonical path (symlinks resolved), like realpath(3). */
  realpath(path: string): string {
    return this.#walk(path, true).path;
  }

  readFile(path: string): Promise<string> {
    return attempt(() => {
      const n = this.#walk(path, true).node;
      if (n.kind === "dir") throw new KernelError("EINVAL", `${path}: is a directory`);
      if (n.kind !== "file") throw new KernelError("ENOENT");
      return n.data;
    });
  }

  readlink(path: string): Promise<string> {
    return attempt(() => {
      const n = this.#walk(path, false).node;
      if (n.kind !== "link") throw new KernelError("EINVAL", `${path}: not a symbolic link`);
      return n.target;
    });
  }

  listDir(path: string): Promise<string[]> {
    return attempt(() => {
      const n = this.#walk(path, true).node;
      if (n.kind !== "dir") throw new KernelError("EINVAL", `${path}: not a directory`);
      return [...n.entries.keys()].sort();
    });
  }

  writeFile(path: string, data: string): Promise<void> {
    return attempt(() => {
      const n = this.#walk(path, true).node;
      if (n.kind !== "file") throw new KernelError("EINVAL");
      if (n.onWrite === undefined) throw new KernelError("EPERM", `${path}: read-only attribute`);
      n.onWrite(data);
    });
  }
}

function attempt<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new K8sError("K8S_ENDPOINT", String(e)));
  }
}

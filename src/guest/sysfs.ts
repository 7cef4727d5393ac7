/**
 * sysfs of the model guest with Linux's layout (reference/pci-sriov.md §9, kubernetes.md §6):
 * /sys/devices/pci0000:00/<bridge>/<BDF> with vendor, device, class, config, the sriov_* files,
 * virtfnN / physfn / driver links and the virtio nesting <BDF>/virtioN/net/<ifname>;
 * /sys/bus/pci/devices and drivers, /sys/bus/virtio, /sys/class/net. The tree is generated from
 * kernel state; directories are rebuilt whenever the kernel's generation moves (every uevent,
 * store and netlink request), and files are read live, so it cannot disagree with the kernel. Network entries are filtered by
 * the namespace the view belongs to, as a sysfs mounted in that namespace shows them.
 *
 * Errors are Linux's: ENOENT (missing), ENOTDIR (a file used as a directory), EISDIR (reading or
 * writing a directory), EACCES (writing a read-only or reading a write-only attribute), EINVAL
 * (readlink of a non-link), ELOOP (more than 40 links), and whatever the attribute's store returns.
 */
import { sysErr } from "./errors.js";

export type SysNode =
  | { readonly kind: "dir"; entries(): Map<string, SysNode> }
  | { readonly kind: "file"; read?: () => string | Uint8Array; write?: (data: string) => void }
  | { readonly kind: "link"; readonly target: string };

export function dir(entries: () => Map<string, SysNode>): SysNode {
  return { kind: "dir", entries };
}
/**
 * A directory whose entries are rebuilt only when `generation()` changes. The kernel bumps its
 * generation with every uevent (every add, remove, bind, unbind, move), which are exactly the
 * events that change sysfs' shape; file contents stay live because they are read on access.
 */
export function memoDir(generation: () => number, entries: () => Map<string, SysNode>): SysNode {
  let gen = -1;
  let cache = new Map<string, SysNode>();
  return {
    kind: "dir",
    entries: () => {
      const g = generation();
      if (g !== gen) {
        cache = entries();
        gen = g;
      }
      return cache;
    },
  };
}

export function ro(read: () => string | Uint8Array): SysNode {
  return { kind: "file", read };
}
export function rw(read: () => string, write: (data: string) => void): SysNode {
  return { kind: "file", read, write };
}
export function wo(write: (data: string) => void): SysNode {
  return { kind: "file", write };
}
export function link(target: string): SysNode {
  return { kind: "link", target };
}

/**
 * The relative link text from directory `fromDir` to `to` (both absolute, under /sys), as
 * kernfs_get_target_path writes it: up to the nearest ancestor of the target's *parent*, so a link
 * to an ancestor reads "../../../virtio1", not "../..".
 */
export function relativeLink(fromDir: string, to: string): string {
  const a = fromDir.split("/").filter((s) => s !== "");
  const b = to.split("/").filter((s) => s !== "");
  let i = 0;
  while (i < a.length && i < b.length - 1 && a[i] === b[i]) i++;
  return [...new Array<string>(a.length - i).fill(".."), ...b.slice(i)].join("/");
}

export class SysfsView {
  constructor(readonly root: SysNode) {}

  /** Resolves a path to its node; follows links in every component, and in the last if `follow`. */
  #lookup(path: string, follow: boolean): { node: SysNode; path: string } {
    if (!path.startsWith("/")) throw sysErr("EINVAL", `not an absolute path: ${path}`);
    const root: SysNode = dir(() => new Map([["sys", this.root]]));
    // Components still to walk, last element first; resolved components with their nodes.
    const todo = path.split("/").filter((p) => p !== "" && p !== ".").reverse();
    const stack: { name: string; node: SysNode }[] = [];
    let hops = 0;
    while (todo.length > 0) {
      const p = todo.pop()!;
      if (p === ".") continue;
      if (p === "..") {
        stack.pop();
        continue;
      }
      const cur = stack[stack.length - 1]?.node ?? root;
      if (cur.kind !== "dir") throw sysErr("ENOTDIR", `${path}: Not a directory`);
      const next = cur.entries().get(p);
      if (next === undefined) throw sysErr("ENOENT", `${path}: No such file or directory`);
      if (next.kind === "link" && (todo.length > 0 || follow)) {
        if (++hops > 40) throw sysErr("ELOOP");
        if (next.target.startsWith("/")) stack.length = 0;
        todo.push(...next.target.split("/").filter((s) => s !== "").reverse());
        continue;
      }
      stack.push({ name: p, node: next });
    }
    return { node: stack[stack.length - 1]?.node ?? root, path: "/" + stack.map((s) => s.name).join("/") };
  }

  read(path: string): string {
    const v = this.readBytes(path);
    return typeof v === "string" ? v : new TextDecoder().decode(v);
  }

  readBytes(path: string): string | Uint8Array {
    const { node } = this.#lookup(path, true);
    if (node.kind === "dir") throw sysErr("EISDIR");
    if (node.kind !== "file") throw sysErr("EINVAL");
    if (node.read === undefined) throw sysErr("EACCES");
    return node.read();
  }

  write(path: string, data: string): void {
    const { node } = this.#lookup(path, true);
    if (node.kind === "dir") throw sysErr("EISDIR");
    if (node.kind !== "file") throw sysErr("EINVAL");
    if (node.write === undefined) throw sysErr("EACCES");
    node.write(data);
  }

  readlink(path: string): string {
    const { node } = this.#lookup(path, false);
    if (node.kind !== "link") throw sysErr("EINVAL", `${path} is not a symbolic link`);
    return node.target;
  }

  list(path: string): string[] {
    const { node } = this.#lookup(path, true);
    if (node.kind !== "dir") throw sysErr("ENOTDIR");
    return [...node.entries().keys()].sort();
  }

  exists(path: string): boolean {
    try {
      this.#lookup(path, true);
      return true;
    } catch {
      return false;
    }
  }

  /** The canonical path after following every link (realpath). */
  realpath(path: string): string {
    return this.#lookup(path, true).path;
  }

  isLink(path: string): boolean {
    try {
      return this.#lookup(path, false).node.kind === "link";
    } catch {
      return false;
    }
  }
}

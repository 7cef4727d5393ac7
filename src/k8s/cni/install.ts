import { chmod, mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Installing vpf-sriov where a container runtime looks for plugins: CNI finds a plugin by its
 * `type` as a file of that name on CNI_PATH, so a small shell wrapper named `vpf-sriov` execs
 * Node on the compiled entry point.
 */
export const CNI_PLUGIN_NAME = "vpf-sriov";

/** The compiled entry point (dist/src/k8s/cni/main.js) next to this module. */
export function cniMainPath(): string {
  return fileURLToPath(new URL("./main.js", import.meta.url));
}

export interface InstallOptions {
  /** The Node binary; default: the one running now. */
  readonly node?: string;
  /** The command line after `node`; default: the compiled entry point. */
  readonly args?: readonly string[];
}

/** Writes `<dir>/vpf-sriov` (mode 0755) and returns its path. */
export async function installCniPlugin(dir: string, opts: InstallOptions = {}): Promise<string> {
  const node = opts.node ?? process.execPath;
  const args = opts.args ?? [cniMainPath()];
  await mkdir(dir, { recursive: true });
  const path = join(dir, CNI_PLUGIN_NAME);
  const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `#!/bin/sh\nexec ${[node, ...args].map(quote).join(" ")} "$@"\n`);
  await chmod(tmp, 0o755);
  await rename(tmp, path);
  return path;
}

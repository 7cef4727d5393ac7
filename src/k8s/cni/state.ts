import { mkdir, readFile, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CniError } from "./errors.js";

/**
 * State that must survive between ADD and DEL, written atomically (DESIGN.md §3.6):
 * `<dataDir>/<containerID>-<ifname>.json` holds what ADD changed and what it found before, so DEL
 * can restore it; `<dataDir>/pci/<BDF>` records which namespace holds a VF; `<dataDir>/pci/<BDF>.lock`
 * serialises every operation on one VF across processes (sriov-cni's flock, kubernetes.md §5).
 */
export async function writeAtomic(path: string, data: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  // rename(2) makes the update atomic: a reader sees the old file or the new one, never a torn
  // one. No fsync: like sriov-cni's cache, the entry need not outlive a crash of the guest.
  await writeFile(tmp, data, { mode: 0o600 });
  await rename(tmp, path);
}

export async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as { code?: unknown }).code === "ENOENT") return undefined;
    throw e;
  }
  try {
    return JSON.parse(text);
  } catch {
    return undefined; // a torn or foreign file counts as absent; writeAtomic never leaves one
  }
}

export function cachePath(dataDir: string, containerId: string, ifname: string): string {
  return join(dataDir, `${containerId}-${ifname}.json`);
}

export function allocPath(dataDir: string, bdf: string): string {
  return join(dataDir, "pci", bdf);
}

export async function listCacheEntries(dataDir: string): Promise<string[]> {
  try {
    return (await readdir(dataDir)).filter((f) => f.endsWith(".json")).map((f) => join(dataDir, f));
  } catch {
    return [];
  }
}

export async function removeFile(path: string): Promise<void> {
  await rm(path, { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: unknown }).code === "EPERM";
  }
}

/**
 * An exclusive lock by O_CREAT|O_EXCL on a file holding the owner's pid. A lock whose owner is
 * gone (a crashed plugin) is taken over. Waits up to `timeoutMs`, then gives CNI code 11.
 */
export async function withLock<T>(path: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  await mkdir(join(path, ".."), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  let delay = 1;
  for (;;) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: "wx", mode: 0o600 });
      break;
    } catch (e) {
      if ((e as { code?: unknown }).code !== "EEXIST") throw e;
    }
    const owner = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
    if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
      // Re-check just before removing, so a lock re-taken by a live process meanwhile survives.
      const again = Number.parseInt(await readFile(path, "utf8").catch(() => ""), 10);
      if (again === owner) await rm(path, { force: true });
      continue;
    }
    if (Date.now() >= deadline) throw new CniError("CNI_TRY_AGAIN_LATER", `lock ${path} is held by process ${owner}`, { details: { lock: path, owner } });
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 50);
  }
  try {
    return await fn();
  } finally {
    await rm(path, { force: true });
  }
}

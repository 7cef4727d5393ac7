import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { LinuxError, LinuxErrorCode } from "./errors.js";

/**
 * The guest's files as scripts/linux-assets.sh provisioned them into .cache/linux/assets, each
 * checked against the SHA-256 the script recorded in manifest.json (a file that changed since is
 * refused, so a snapshot keyed by these hashes can never be restored onto other binaries).
 */
export interface LinuxAssets {
  readonly dir: string;
  readonly kernelRelease: string;
  readonly vmlinuz: Uint8Array;
  readonly busybox: Uint8Array;
  readonly bios: Uint8Array;
  readonly vgaBios: Uint8Array;
  /** Kernel modules by file name (e.g. "virtio_pci.ko"). */
  readonly modules: ReadonlyMap<string, Uint8Array>;
  /** Every file's SHA-256 as recorded in the manifest, keyed by its path in the asset folder. */
  readonly hashes: Readonly<Record<string, string>>;
  /** Pinned Debian packages: name → version. */
  readonly packages: Readonly<Record<string, string>>;
}

interface Manifest {
  kernelRelease: string;
  packages: Record<string, { version: string }>;
  files: Record<string, string>;
}

/** The repository root: the nearest folder above this module holding package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/** The cache folder: $VPF_LINUX_CACHE (as scripts/linux-assets.sh reads it), else <repo>/.cache/linux. */
export function cacheDir(): string {
  const fromEnv = process.env["VPF_LINUX_CACHE"];
  return fromEnv !== undefined && fromEnv !== "" ? resolve(repoRoot(), fromEnv) : join(repoRoot(), ".cache", "linux");
}

/** Where assets live: $VPF_LINUX_ASSETS, else <cache>/assets. */
export function defaultAssetDir(): string {
  const fromEnv = process.env["VPF_LINUX_ASSETS"];
  return fromEnv !== undefined && fromEnv !== "" ? resolve(fromEnv) : join(cacheDir(), "assets");
}

/** True when the provisioning script has run (the manifest exists); checks no hashes. */
export function assetsProvisioned(dir: string = defaultAssetDir()): boolean {
  return existsSync(join(dir, "manifest.json"));
}

function parseManifest(text: string, path: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new LinuxError(LinuxErrorCode.assetsMissing, `${path} is not valid JSON; rerun: bash scripts/linux-assets.sh --force`, { cause });
  }
  const m = raw as Partial<Manifest> | null;
  if (m === null || typeof m !== "object" || typeof m.kernelRelease !== "string" || typeof m.files !== "object" || typeof m.packages !== "object") {
    throw new LinuxError(LinuxErrorCode.assetsMissing, `${path} lacks kernelRelease/files/packages; rerun: bash scripts/linux-assets.sh --force`);
  }
  return m as Manifest;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Loads and verifies every file of the manifest. */
export function loadAssets(dir: string = defaultAssetDir()): LinuxAssets {
  const manifestPath = join(dir, "manifest.json");
  if (!existsSync(manifestPath)) {
    throw new LinuxError(LinuxErrorCode.assetsMissing, `no Linux guest assets in ${dir}; run: bash scripts/linux-assets.sh`, { details: { dir } });
  }
  const manifest = parseManifest(readFileSync(manifestPath, "utf8"), manifestPath);
  const files = new Map<string, Uint8Array>();
  for (const [name, want] of Object.entries(manifest.files)) {
    const path = join(dir, name);
    if (!existsSync(path)) {
      throw new LinuxError(LinuxErrorCode.assetsMissing, `${path} is missing; rerun: bash scripts/linux-assets.sh --force`, { details: { path } });
    }
    const bytes = new Uint8Array(readFileSync(path));
    const got = sha256Hex(bytes);
    if (got !== want) {
      throw new LinuxError(LinuxErrorCode.assetChecksum, `${path} has SHA-256 ${got}, manifest says ${want}; rerun: bash scripts/linux-assets.sh --force`, {
        details: { path, got, want },
      });
    }
    files.set(name, bytes);
  }
  const need = (name: string): Uint8Array => {
    const f = files.get(name);
    if (f === undefined) throw new LinuxError(LinuxErrorCode.assetsMissing, `manifest ${manifestPath} does not list ${name}`, { details: { name } });
    return f;
  };
  const modules = new Map<string, Uint8Array>();
  for (const [name, bytes] of files) if (name.startsWith("modules/")) modules.set(name.slice("modules/".length), bytes);
  const packages: Record<string, string> = {};
  for (const [name, p] of Object.entries(manifest.packages)) packages[name] = p.version;
  return {
    dir,
    kernelRelease: manifest.kernelRelease,
    vmlinuz: need("vmlinuz"),
    busybox: need("busybox"),
    bios: need("bios.bin"),
    vgaBios: need("vgabios.bin"),
    modules,
    hashes: { ...manifest.files },
    packages,
  };
}

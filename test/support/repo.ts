/** Helpers for tests that read the repository itself (sources and docs), from src/ or dist/. */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the nearest folder above `fromUrl` holding a package.json. */
export function repoRoot(fromUrl: string = import.meta.url): string {
  let dir = dirname(fileURLToPath(fromUrl));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir) throw new Error("package.json not found above the test");
    dir = up;
  }
  return dir;
}

/** Every non-test .ts file below `dir`. */
export function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (p.endsWith(".ts") && !p.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

/**
 * Stable error codes a source tree throws: the first string argument of an error constructor,
 * of `super(...)` in an error class, of the guest's `sysErr(...)`, or of a `#fail(...)` that
 * records one.
 */
export function thrownCodes(dir: string): Map<string, string> {
  const codes = new Map<string, string>();
  const re = /(?:new [A-Za-z]*Error|super|sysErr|#fail)\(\s*"([A-Z][A-Z0-9_]+)"/g;
  for (const file of sourceFiles(dir)) {
    for (const m of readFileSync(file, "utf8").matchAll(re)) {
      const code = m[1] ?? "";
      if (!codes.has(code)) codes.set(code, file);
    }
  }
  return codes;
}

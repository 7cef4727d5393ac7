import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, from src/ under tsx or dist/src/ once compiled. */
function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, "package.json"))) {
    const up = dirname(d);
    if (up === d) throw new Error("package.json not found");
    d = up;
  }
  return d;
}

/** Codes thrown or recorded in a layer's sources: the first string argument of an error or #fail. */
function codesIn(dir: string): Set<string> {
  const codes = new Set<string>();
  for (const f of readdirSync(dir)) {
    if (!f.endsWith(".ts") || f.endsWith(".test.ts")) continue;
    const src = readFileSync(join(dir, f), "utf8");
    for (const m of src.matchAll(/(?:Error|#fail)\(\s*"([A-Z][A-Z0-9_]+)"/g)) if (m[1] !== undefined) codes.add(m[1]);
  }
  return codes;
}

for (const [layer, doc] of [["virtio", "docs/virtio.md"], ["memory", "docs/memory.md"]] as const) {
  test(`every error code of src/${layer} is documented in ${doc}`, () => {
    const root = repoRoot();
    const text = readFileSync(join(root, doc), "utf8");
    const codes = codesIn(join(root, "src", layer));
    assert.ok(codes.size >= 5, "the scan finds codes");
    const missing = [...codes].filter((c) => !text.includes(`\`${c}\``));
    assert.deepEqual(missing, []);
  });
}

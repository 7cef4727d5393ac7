import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the nearest ancestor holding package.json (works from src/ and dist/src/). */
function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, "package.json"))) {
    const up = dirname(d);
    assert.notEqual(up, d, "package.json not found above the test");
    d = up;
  }
  return d;
}

test("every WireError code thrown in src/wire is documented in docs/wire.md", () => {
  const root = repoRoot();
  const doc = readFileSync(join(root, "docs", "wire.md"), "utf8");
  const dir = join(root, "src", "wire");
  const codes = new Set<string>();
  for (const f of readdirSync(dir)) {
    if (!f.endsWith(".ts") || f.endsWith(".test.ts")) continue;
    for (const m of readFileSync(join(dir, f), "utf8").matchAll(/"(WIRE_[A-Z_]+)"/g)) codes.add(m[1]!);
  }
  assert.ok(codes.size >= 6);
  for (const c of codes) assert.ok(doc.includes(`\`${c}\``), `${c} missing from docs/wire.md`);
});

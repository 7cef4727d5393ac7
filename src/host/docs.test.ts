import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, "package.json"))) {
    const up = dirname(d);
    assert.notEqual(up, d, "package.json not found above the test");
    d = up;
  }
  return d;
}

/** Codes thrown in a layer's sources: NicError codes, KernelError errno names, HostUsageError. */
function thrownCodes(layer: string): Set<string> {
  const dir = join(repoRoot(), "src", layer);
  const codes = new Set<string>();
  for (const f of readdirSync(dir)) {
    if (!f.endsWith(".ts") || f.endsWith(".test.ts")) continue;
    const text = readFileSync(join(dir, f), "utf8");
    for (const m of text.matchAll(/new (?:NicError|KernelError)\("([A-Z0-9_]+)"/g)) codes.add(m[1]!);
    if (text.includes("new HostUsageError(")) codes.add("HOST_USAGE");
  }
  return codes;
}

for (const layer of ["nic", "host"]) {
  test(`every code thrown in src/${layer} is documented in docs/${layer}.md`, () => {
    const doc = readFileSync(join(repoRoot(), "docs", `${layer}.md`), "utf8");
    const codes = thrownCodes(layer);
    assert.ok(codes.size >= 3);
    for (const c of codes) assert.ok(doc.includes(`\`${c}\``), `${c} missing from docs/${layer}.md`);
  });
}

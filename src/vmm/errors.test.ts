import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { repoRoot as findRoot } from "../../test/support/repo.js";

const repoRoot = (): string => findRoot(import.meta.url);


test("every error code src/vmm throws is declared and documented in docs/vmm.md", () => {
  const root = repoRoot();
  const srcDir = join(root, "src", "vmm");
  const thrown = new Set<string>();
  for (const f of readdirSync(srcDir)) {
    if (!f.endsWith(".ts") || f.endsWith(".test.ts")) continue;
    const text = readFileSync(join(srcDir, f), "utf8");
    for (const m of text.matchAll(/new VmmError\(\s*"([A-Z_]+)"/g)) if (m[1] !== undefined) thrown.add(m[1]);
    for (const m of text.matchAll(/super\("([A-Z_]+)"/g)) if (m[1] !== undefined) thrown.add(m[1]);
  }
  const errorsTs = readFileSync(join(srcDir, "errors.ts"), "utf8");
  const declared = new Set([...errorsTs.matchAll(/\| "([A-Z_]+)"/g)].map((m) => m[1] ?? ""));
  const docs = readFileSync(join(root, "docs", "vmm.md"), "utf8");
  assert.ok(thrown.size >= 7, `found only ${thrown.size} codes`);
  for (const c of thrown) {
    assert.ok(declared.has(c) || c === "VMM_TEST_GUEST", `${c} is thrown but not in VmmErrorCode`);
    assert.ok(docs.includes(`\`${c}\``), `${c} is not documented in docs/vmm.md`);
  }
  for (const c of declared) assert.ok(thrown.has(c), `${c} is declared but never thrown`);
});

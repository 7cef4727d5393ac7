import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { repoRoot as findRoot } from "../../test/support/repo.js";

const repoRoot = (): string => findRoot(import.meta.url);


test("every error code src/pci throws is documented in docs/pci.md (STYLE.md: fastify-style code docs)", () => {
  const root = repoRoot();
  const srcDir = join(root, "src", "pci");
  const thrown = new Set<string>();
  for (const f of readdirSync(srcDir)) {
    if (!f.endsWith(".ts") || f.endsWith(".test.ts")) continue;
    const text = readFileSync(join(srcDir, f), "utf8");
    for (const m of text.matchAll(/new PciError\(\s*"([A-Z_]+)"/g)) if (m[1] !== undefined) thrown.add(m[1]);
  }
  const errorsTs = readFileSync(join(srcDir, "errors.ts"), "utf8");
  const declared = new Set([...errorsTs.matchAll(/\| "([A-Z_]+)"/g)].map((m) => m[1] ?? ""));
  const docs = readFileSync(join(root, "docs", "pci.md"), "utf8");
  assert.ok(thrown.size >= 8, `found only ${thrown.size} codes`);
  for (const c of thrown) {
    assert.ok(declared.has(c), `${c} is thrown but not in PciErrorCode`);
    assert.ok(docs.includes(`\`${c}\``), `${c} is not documented in docs/pci.md`);
  }
  for (const c of declared) assert.ok(thrown.has(c), `${c} is declared but never thrown`);
});

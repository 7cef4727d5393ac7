/**
 * Every stable error code a layer throws is documented in that layer's docs (STYLE.md: fastify
 * tests that every code is documented): a code counts as documented when it appears in
 * backticks in one of the layer's docs files.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot, thrownCodes } from "./support/repo.js";

const root = repoRoot(import.meta.url);

/** The docs that document each layer's codes (a layer not listed: docs/<layer>.md). */
const DOCS: Record<string, readonly string[]> = {
  base: ["architecture.md"],
  vmm: ["vmm.md", "admin-commands.md"],
  world: ["cli.md"],
  cli: ["cli.md"],
};

for (const layer of readdirSync(join(root, "src")).sort()) {
  test(`every error code thrown in src/${layer} is documented in its docs`, () => {
    const docs = (DOCS[layer] ?? [`${layer}.md`]).map((f) => readFileSync(join(root, "docs", f), "utf8")).join("\n");
    const missing = [...thrownCodes(join(root, "src", layer))].filter(([code]) => !docs.includes(`\`${code}\``)).map(([code, file]) => `${code} (${file.slice(root.length + 1)})`);
    assert.deepEqual(missing, [], `undocumented error codes in src/${layer}`);
  });
}

test("the scan finds the codes it should", () => {
  const all = readdirSync(join(root, "src")).flatMap((l) => [...thrownCodes(join(root, "src", l)).keys()]);
  assert.ok(all.length > 100, `found only ${all.length} codes: the scan is broken`);
  for (const c of ["PCI_VF_OFF_BUS", "TOPOLOGY_INVALID", "WIRE_TRUNCATED", "EBUSY"]) assert.ok(all.includes(c), c);
});

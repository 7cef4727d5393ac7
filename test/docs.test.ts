/**
 * Every stable error code thrown in src/ is documented in docs/ (STYLE.md: fastify tests that
 * every code is documented). A code counts as thrown when it is the first argument of an error
 * constructor, `super(...)` in an error class, or the guest's `sysErr(...)`; documented means it
 * appears in backticks in some docs/*.md file.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith(".ts") && !p.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

test("every error code thrown in src/ is documented in docs/", () => {
  const docs = readdirSync(join(root, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => readFileSync(join(root, "docs", f), "utf8"))
    .join("\n");
  const thrown = new Map<string, string>();
  const re = /(?:new [A-Za-z]*Error|super|sysErr)\(\s*"([A-Z][A-Z0-9_]+)"/g;
  for (const file of sources(join(root, "src"))) {
    for (const m of readFileSync(file, "utf8").matchAll(re)) {
      const code = m[1] ?? "";
      if (!thrown.has(code)) thrown.set(code, file.slice(root.length + 1));
    }
  }
  assert.ok(thrown.size > 50, `found only ${thrown.size} codes: the scan is broken`);
  const missing = [...thrown].filter(([code]) => !docs.includes(`\`${code}\``)).map(([code, file]) => `${code} (${file})`);
  assert.deepEqual(missing, [], "undocumented error codes");
});

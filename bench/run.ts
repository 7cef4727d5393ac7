/**
 * `npm run bench`: runs every benchmark suite and prints one line per figure. Suites live in
 * bench/*.bench.ts and export `suite: BenchSuite`. Results are recorded by hand in
 * docs/benchmarks.md together with the command and the machine.
 */
import { readdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import os from "node:os";
import type { BenchSuite } from "./harness.js";

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const files = (await readdir(here)).filter((f) => f.endsWith(".bench.js")).sort();
console.log(`# vpf bench — node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`);
for (const f of files) {
  const mod = (await import(pathToFileURL(join(here, f)).href)) as { suite?: BenchSuite };
  const s = mod.suite;
  if (s === undefined) continue;
  if (only.length > 0 && !only.includes(s.name)) continue;
  console.log(`\n## ${s.name}`);
  for (const r of await s.run()) console.log(`${r.name.padEnd(56)} ${r.value.toPrecision(4).padStart(12)} ${r.unit}${r.note ? `  (${r.note})` : ""}`);
}

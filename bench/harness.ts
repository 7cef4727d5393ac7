/** Small benchmark helpers shared by bench/*.bench.ts. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  note?: string;
}
export interface BenchSuite {
  name: string;
  run(): Promise<BenchResult[]> | BenchResult[];
}

/**
 * Calls fn (which performs `opsPerCall` operations) repeatedly for about `ms` milliseconds
 * after a warm-up; returns operations per second.
 */
export function opsPerSecond(fn: () => void, opsPerCall: number, ms = 500): number {
  for (let i = 0; i < 20; i++) fn(); // warm up the JIT
  let calls = 0;
  const start = process.hrtime.bigint();
  const budget = BigInt(ms) * 1_000_000n;
  let elapsed = 0n;
  while (elapsed < budget) {
    fn();
    calls++;
    elapsed = process.hrtime.bigint() - start;
  }
  return (calls * opsPerCall) / (Number(elapsed) / 1e9);
}

/** Times one call of fn in milliseconds, best of `repeat`. */
export function bestMs(fn: () => void, repeat = 5): number {
  let best = Infinity;
  for (let i = 0; i < repeat; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    const t = Number(process.hrtime.bigint() - t0) / 1e6;
    if (t < best) best = t;
  }
  return best;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

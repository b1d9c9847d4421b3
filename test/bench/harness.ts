// A tiny benchmark harness: runs a function for a while, prints ops/s and per-op time.
// Benchmarks print figures and ratios; they never assert on time.

export interface Measurement {
  name: string;
  ops: number;
  seconds: number;
  opsPerSecond: number;
  microsPerOp: number;
}

/** Runs fn in batches until minSeconds have passed (after a short warm-up). */
export function measure(name: string, fn: () => unknown, minSeconds = 0.5, batch = 100): Measurement {
  for (let i = 0; i < Math.min(batch, 50); i++) fn();
  let ops = 0;
  const start = Bun.nanoseconds();
  let elapsed = 0;
  while (elapsed < minSeconds * 1e9) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    elapsed = Bun.nanoseconds() - start;
  }
  const seconds = elapsed / 1e9;
  return { name, ops, seconds, opsPerSecond: ops / seconds, microsPerOp: (seconds * 1e6) / ops };
}

export function report(title: string, rows: Measurement[]): void {
  console.log(`\n## ${title}`);
  for (const r of rows) {
    console.log(`${r.name.padEnd(44)} ${r.opsPerSecond.toFixed(0).padStart(12)} ops/s ${r.microsPerOp.toFixed(2).padStart(10)} µs/op`);
  }
}

export function ratio(label: string, a: Measurement, b: Measurement): void {
  console.log(`${label}: ${(a.opsPerSecond / b.opsPerSecond).toFixed(2)}x`);
}

// npm run bench: runs every test/bench/*.bench.ts in turn (or those named on the command line).
import { readdirSync } from "node:fs";
import { join } from "node:path";

const wanted = process.argv.slice(2);
const files = readdirSync(import.meta.dir)
  .filter((f) => f.endsWith(".bench.ts"))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.includes(w)))
  .sort();
console.log(`# Portier benchmarks — Bun ${Bun.version}, ${process.platform}-${process.arch}`);
for (const file of files) {
  const result = Bun.spawnSync([process.execPath, join(import.meta.dir, file)], { stdout: "inherit", stderr: "inherit" });
  if (result.exitCode !== 0) {
    console.error(`${file} failed with exit code ${result.exitCode}`);
    process.exitCode = 1;
  }
}

// npm run build: compiles Portier into one self-contained executable, dist/portier.
// The better-sqlite3 addon is embedded through its `with { type: "file" }` import. The thumbnail
// worker is a second entry point, so the binary can start it as a worker thread.
const result = Bun.spawnSync(
  [process.execPath, "build", "--compile", "--minify-syntax", "--minify-whitespace", "src/main.ts", "src/services/media/thumbnail-worker.ts", "--outfile", "dist/portier"],
  { stdout: "inherit", stderr: "inherit" },
);
process.exit(result.exitCode ?? 1);

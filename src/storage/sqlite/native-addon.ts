// better-sqlite3's N-API addon, embedded into the compiled binary. A `with { type: "file" }` import
// makes `bun build --compile` carry the .node file inside dist/portier, so the binary never looks for
// node_modules. From source (npm start, bun test) better-sqlite3 finds its own prebuild, and the import
// is skipped: `bun test` refuses to import .node files.

const compiled = import.meta.url.includes("$bunfs");

async function embeddedAddon(): Promise<string | undefined> {
  if (!compiled || process.platform !== "linux") return undefined;
  if (process.arch === "x64") {
    // @ts-expect-error -- .node files have no type declarations
    return (await import("../../../node_modules/better-sqlite3/prebuilds/linux-x64.node", { with: { type: "file" } })).default;
  }
  if (process.arch === "arm64") {
    // @ts-expect-error -- .node files have no type declarations
    return (await import("../../../node_modules/better-sqlite3/prebuilds/linux-arm64.node", { with: { type: "file" } })).default;
  }
  return undefined;
}

/** The embedded addon's path inside the binary, or undefined to let better-sqlite3 find its own. */
export const betterSqliteAddonPath: string | undefined = await embeddedAddon();

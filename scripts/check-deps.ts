// The dependency rule of ARCHITECTURE.md, checked in CI:
//   protocol imports nothing of the project; storage imports only protocol (and itself);
//   services never import api; api never imports storage; plugins import only src/extensions.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const defaultRoot = resolve(import.meta.dir, "..");

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else if (/\.(ts|js)$/.test(name)) yield path;
  }
}

/** The layer a file belongs to: "protocol", "storage", "services", "api", "extensions", "plugins", or other. */
function layerOf(root: string, path: string): string {
  const rel = relative(root, path).split("/");
  if (rel[0] === "plugins") return "plugins";
  if (rel[0] === "src") return rel.length > 2 ? rel[1] : "src-root";
  return "other";
}

const allowed: Record<string, (target: string, targetPath: string, root: string) => boolean> = {
  protocol: (t) => t === "protocol",
  storage: (t) => t === "storage" || t === "protocol",
  services: (t) => ["services", "protocol", "storage-interfaces", "extensions", "config", "di"].includes(t),
  api: (t) => t !== "storage",
  extensions: (t) => t === "extensions" || t === "protocol",
  plugins: (t, p, root) => t === "plugins" || p.startsWith(join(root, "src", "extensions")),
};

export function violations(root: string = defaultRoot): string[] {
  const found: string[] = [];
  for (const base of ["src", "plugins"]) {
    let all: string[];
    try {
      all = [...files(join(root, base))];
    } catch {
      continue;
    }
    for (const file of all) {
      const layer = layerOf(root, file);
      const rule = allowed[layer];
      if (!rule) continue;
      const source = readFileSync(file, "utf8");
      for (const match of source.matchAll(/(?:import|export)[^'"]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g)) {
        const spec = match[1] ?? match[2];
        if (!spec.startsWith(".")) continue;
        const targetPath = resolve(dirname(file), spec);
        // A folder import ("../../extensions") means its index.ts.
        const targetFile = targetPath.endsWith(".ts") ? targetPath : existsSync(targetPath) && statSync(targetPath).isDirectory() ? join(targetPath, "index.ts") : targetPath + ".ts";
        let target = layerOf(root, targetFile);
        // Services may see storage only through the per-domain store interfaces.
        if (layer !== "storage" && target === "storage" && relative(root, targetPath).replace(/\.ts$/, "") === "src/storage/stores") target = "storage-interfaces";
        if (!rule(target, targetPath, root)) found.push(`${relative(root, file)} (${layer}) imports ${spec} (${target})`);
      }
    }
  }
  return found;
}

if (import.meta.main) {
  const bad = violations();
  for (const line of bad) console.error(`dependency rule: ${line}`);
  console.log(bad.length === 0 ? "dependency rule: ok" : `dependency rule: ${bad.length} violation(s)`);
  process.exit(bad.length === 0 ? 0 : 1);
}

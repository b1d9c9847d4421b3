import { describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { violations } from "../../scripts/check-deps";
import { tempDir } from "../helpers/server";

function tree(files: Record<string, string>): string {
  const root = tempDir("portier-deps-");
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe("dependency rule", () => {
  test("Portier's own tree keeps it", () => {
    expect(violations()).toEqual([]);
  });

  test("catches protocol importing services, api importing storage, and plugins reaching past extensions", () => {
    const root = tree({
      "src/protocol/a.ts": 'import { x } from "../services/b";\n',
      "src/services/b.ts": "export const x = 1;\n",
      "src/api/c.ts": 'import { y } from "../storage/sqlite/driver";\n',
      "src/storage/sqlite/driver.ts": "export const y = 1;\n",
      "src/storage/stores.ts": "export type S = 1;\n",
      "src/services/d.ts": 'import type { S } from "../storage/stores";\nimport { y } from "../storage/sqlite/driver";\n',
      "src/extensions/e.ts": "export const e = 1;\n",
      "plugins/p/index.ts": 'import { e } from "../../src/extensions/e";\nimport { x } from "../../src/services/b";\n',
    });
    const found = violations(root);
    expect(found).toHaveLength(4);
    expect(found.join("\n")).toContain("src/protocol/a.ts (protocol) imports ../services/b");
    expect(found.join("\n")).toContain("src/api/c.ts (api) imports ../storage/sqlite/driver");
    expect(found.join("\n")).toContain("src/services/d.ts (services) imports ../storage/sqlite/driver");
    expect(found.join("\n")).toContain("plugins/p/index.ts (plugins) imports ../../src/services/b");
  });

  test("a folder import means the folder's index.ts", () => {
    const root = tree({
      "src/extensions/index.ts": "export const e = 1;\n",
      "src/services/s.ts": 'import { e } from "../extensions";\n',
      "plugins/p/index.ts": 'import { e } from "../../src/extensions";\n',
      "src/protocol/p.ts": 'import { e } from "../extensions";\n',
    });
    expect(violations(root)).toEqual(["src/protocol/p.ts (protocol) imports ../extensions (extensions)"]);
  });
});

// Log lines: text by default; with log_format json, one JSON object per line ({time, level, message,
// ...fields}), from the logger itself and from a whole server that logs to stderr.
import { describe, expect, test } from "bun:test";
import { buildServer } from "../../src/app";
import { resolveConfig } from "../../src/config/loader";
import { consoleLogger } from "../../src/services/runtime";
import { tempDir } from "../helpers/server";

function captured(format: "text" | "json", minimum: "debug" | "info" = "debug") {
  const lines: string[] = [];
  return { lines, logger: consoleLogger(minimum, format, (line) => lines.push(line)) };
}

describe("consoleLogger", () => {
  test("json: one parseable object per line with time, level, message and the fields", () => {
    const { lines, logger } = captured("json");
    logger.log("info", "listening", { url: "http://127.0.0.1:8008", count: 3, nested: { a: [1, "two"] } });
    logger.log("error", "a message with\nnewlines and \"quotes\"");
    expect(lines.every((l) => l.endsWith("\n") && l.indexOf("\n") === l.length - 1)).toBe(true);
    const [first, second] = lines.map((l) => JSON.parse(l));
    expect(first).toEqual({ time: expect.any(String), level: "info", message: "listening", url: "http://127.0.0.1:8008", count: 3, nested: { a: [1, "two"] } });
    expect(new Date(first.time).toISOString()).toBe(first.time);
    expect(Object.keys(first).slice(0, 3)).toEqual(["time", "level", "message"]);
    expect(second).toEqual({ time: expect.any(String), level: "error", message: "a message with\nnewlines and \"quotes\"" });
  });

  test("json: fields named like the line's own keys are kept apart; values JSON cannot write still give a line", () => {
    const { lines, logger } = captured("json");
    const cyclic: Record<string, unknown> = { name: "loop" };
    cyclic.self = cyclic;
    logger.log("warn", "odd fields", { level: "mine", time: 5, message: "inner", big: 10n, cyclic });
    const line = JSON.parse(lines[0]!);
    expect(line).toMatchObject({ level: "warn", message: "odd fields", field_level: "mine", field_time: 5, field_message: "inner", big: "10", cyclic: { name: "loop", self: "[cycle]" } });
  });

  test("text stays the default, and the level filter holds in both formats", () => {
    const text = captured("text", "info");
    text.logger.log("debug", "hidden");
    text.logger.log("info", "shown", { a: 1 });
    expect(text.lines).toEqual([expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z INFO shown \{"a":1\}\n$/)]);
    const json = captured("json", "info");
    json.logger.log("debug", "hidden");
    expect(json.lines).toEqual([]);
    expect(resolveConfig({}).log_format).toBe("text");
  });
});

describe("a server with log_format json", () => {
  test("writes only JSON lines to stderr", async () => {
    const config = resolveConfig({ bind: "127.0.0.1:0", data_dir: tempDir(), plugins: [], federation: { enabled: false }, log_format: "json" });
    const written: string[] = [];
    const original = process.stderr.write;
    process.stderr.write = ((chunk: string | Uint8Array) => {
      written.push(typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk));
      return true;
    }) as typeof process.stderr.write;
    try {
      const server = await buildServer(config);
      try {
        await server.start();
      } finally {
        await server.stop();
      }
    } finally {
      process.stderr.write = original;
    }
    const lines = written.join("").split("\n").filter((l) => l !== "");
    // A new data folder: the signing key is generated, then the server listens.
    expect(lines.length).toBeGreaterThanOrEqual(2);
    const entries = lines.map((l) => JSON.parse(l));
    for (const e of entries) {
      expect(new Date(e.time).toISOString()).toBe(e.time);
      expect(["debug", "info", "warn", "error"]).toContain(e.level);
      expect(typeof e.message).toBe("string");
    }
    const messages = entries.map((e) => e.message);
    expect(messages).toContain("generated a new signing key");
    const listening = entries.find((e) => e.message === "listening");
    expect(listening.level).toBe("info");
    expect(listening.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });
});

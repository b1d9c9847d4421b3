import { describe, expect, test } from "bun:test";
import { configFromEnv, ConfigError, loadConfig, parseConfigYaml, resolveConfig } from "../../src/config/loader";
import { sampleConfig } from "../../src/config/sample";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

describe("config", () => {
  test("embedded defaults", () => {
    const c = resolveConfig({});
    expect(c.server_name).toBe("localhost");
    expect(c.bind).toBe("127.0.0.1:8008");
    expect(c.data_dir).toBe("./data");
    expect(c.database.driver).toBe("better-sqlite3");
    expect(Object.isFrozen(c) && Object.isFrozen(c.database)).toBe(true);
  });

  test("environment overrides file, nested keys with a double underscore", () => {
    const dir = mkdtempSync(join(tmpdir(), "portier-config-"));
    const file = join(dir, "portier.yaml");
    writeFileSync(file, "server_name: from-file.org\nbind: 127.0.0.1:9000\nregistration:\n  enabled: false\n");
    const c = loadConfig({
      configFile: file,
      env: { PORTIER_BIND: "127.0.0.1:9100", PORTIER_DATA_DIR: "/tmp/x", PORTIER_REGISTRATION__ENABLED: "true", HOME: "/root" },
    });
    expect(c.server_name).toBe("from-file.org");
    expect(c.bind).toBe("127.0.0.1:9100");
    expect(c.data_dir).toBe("/tmp/x");
    expect(c.registration.enabled).toBe(true);
  });

  test("PORTIER_SERVER_NAME keeps a numeric-looking name a string", () => {
    expect(resolveConfig(configFromEnv({ PORTIER_SERVER_NAME: "1234" })).server_name).toBe("1234");
  });

  test.each([
    [{ bogus: 1 }, "unknown config key 'bogus'"],
    [{ database: { drvier: "x" } }, "unknown config key 'database.drvier'"],
    [{ bind: "no-port" }, "config key 'bind'"],
    [{ database: { driver: "mysql" } }, "config key 'database.driver'"],
    [{ key_valid_for_ms: 5 }, "config key 'key_valid_for_ms'"],
  ])("rejects %p naming the key", (tree, message) => {
    expect(() => resolveConfig(tree as Record<string, unknown>)).toThrow(message);
  });

  test("an unknown PORTIER_ variable is an unknown key", () => {
    expect(() => resolveConfig(configFromEnv({ PORTIER_NO_SUCH_THING: "1" }))).toThrow("unknown config key 'no_such_thing'");
  });

  test("bad YAML and a missing file are ConfigErrors", () => {
    expect(() => parseConfigYaml("a: [1,", "x.yaml")).toThrow(ConfigError);
    expect(() => loadConfig({ configFile: "/nonexistent/portier.yaml" })).toThrow(ConfigError);
  });

  test("the generated sample config loads back to the same values", () => {
    const sample = sampleConfig({ server_name: "example.org" });
    expect(sample).toContain("# The domain part of user IDs");
    const c = resolveConfig(parseConfigYaml(sample, "sample"));
    expect(c.server_name).toBe("example.org");
    expect({ ...c, server_name: "localhost" }).toEqual(resolveConfig({}));
  });
});

describe("config values from the environment", () => {
  test("string settings keep their text; numbers and booleans are parsed", () => {
    const c = resolveConfig(configFromEnv({ PORTIER_REGISTRATION__SHARED_SECRET: "0123", PORTIER_SERVER_NAME: "1e3.example", PORTIER_MAX_REQUEST_BODY_BYTES: "4096", PORTIER_REGISTRATION__ENABLED: "true" }));
    expect(c.registration.shared_secret).toBe("0123");
    expect(c.server_name).toBe("1e3.example");
    expect(c.max_request_body_bytes).toBe(4096);
    expect(c.registration.enabled).toBe(true);
  });

  test("an empty variable is an error, not a silent default", () => {
    expect(() => configFromEnv({ PORTIER_SERVER_NAME: "" })).toThrow("PORTIER_SERVER_NAME is empty");
  });

  test("server_name must be a valid server name", () => {
    expect(() => resolveConfig({ server_name: "exa mple/..:x" })).toThrow("config key 'server_name'");
    expect(resolveConfig({ server_name: "[::1]:8448" }).server_name).toBe("[::1]:8448");
  });
});

describe("database settings", () => {
  test("postgres takes a postgres:// url and a pool size; SQLite keeps its defaults", () => {
    const pg = resolveConfig({ database: { driver: "postgres", url: "postgres://u:p@127.0.0.1:5432/portier", pool_size: 4 } });
    expect(pg.database).toEqual({ driver: "postgres", url: "postgres://u:p@127.0.0.1:5432/portier", pool_size: 4, wal_preallocate_mb: 48 });
    expect(resolveConfig({}).database.driver).toBe("better-sqlite3");
    expect(resolveConfig({ database: { wal_preallocate_mb: 0 } }).database.wal_preallocate_mb).toBe(0);
    expect(() => resolveConfig({ database: { wal_preallocate_mb: 65 } })).toThrow(/wal_preallocate_mb/);
  });

  test.each([
    [{ driver: "postgres" }, "database.url"],
    [{ driver: "postgres", url: "mysql://h/db" }, "database.url"],
    [{ driver: "postgres", url: "postgres://h" }, "database.url"],
    [{ driver: "postgres", url: "not a url" }, "database.url"],
    [{ driver: "postgres", url: "postgres://h/db", path: "x.db" }, "database.path"],
    [{ driver: "better-sqlite3", url: "postgres://h/db" }, "database.url"],
    [{ driver: "postgres", url: "postgres://h/db", pool_size: 1 }, "database.pool_size"],
  ])("%p is a config error naming %s", (database, key) => {
    expect(() => resolveConfig({ database })).toThrow(ConfigError);
    expect(() => resolveConfig({ database })).toThrow(key);
  });
});

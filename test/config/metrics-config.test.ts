// The metrics and log format settings: defaults, the generated sample, environment variables, and
// refusals that name the key.
import { describe, expect, test } from "bun:test";
import { configFromEnv, parseConfigYaml, resolveConfig } from "../../src/config/loader";
import { sampleConfig } from "../../src/config/sample";

describe("metrics and log_format config", () => {
  test("off by default, on 127.0.0.1; text logs", () => {
    const c = resolveConfig({});
    expect(c.metrics).toEqual({ enabled: false, bind_address: "127.0.0.1", port: 9000 });
    expect(c.log_format).toBe("text");
  });

  test("the sample config documents them and loads back", () => {
    const sample = sampleConfig();
    expect(sample).toContain("\nmetrics:\n");
    expect(sample).toContain("  # Serve Prometheus metrics at /metrics");
    expect(sample).toContain("  enabled: false\n");
    expect(sample).toContain('  bind_address: "127.0.0.1"\n');
    expect(sample).toContain('\nlog_format: "text"\n');
    expect(resolveConfig(parseConfigYaml(sample, "sample")).metrics.enabled).toBe(false);
  });

  test("from YAML and from the environment", () => {
    const yaml = resolveConfig(parseConfigYaml("metrics:\n  enabled: true\n  port: 9101\nlog_format: json\n", "x.yaml"));
    expect(yaml.metrics).toEqual({ enabled: true, bind_address: "127.0.0.1", port: 9101 });
    expect(yaml.log_format).toBe("json");
    const env = resolveConfig(configFromEnv({ PORTIER_METRICS__ENABLED: "true", PORTIER_METRICS__PORT: "0", PORTIER_METRICS__BIND_ADDRESS: "::1", PORTIER_LOG_FORMAT: "json" }));
    expect(env.metrics).toEqual({ enabled: true, bind_address: "::1", port: 0 });
    expect(env.log_format).toBe("json");
  });

  test.each([
    [{ metrics: { port: 70000 } }, "config key 'metrics.port'"],
    [{ metrics: { enabled: "maybe" } }, "config key 'metrics.enabled'"],
    [{ metrics: { path: "/m" } }, "unknown config key 'metrics.path'"],
    [{ log_format: "xml" }, "config key 'log_format'"],
  ])("rejects %p naming the key", (tree, message) => {
    expect(() => resolveConfig(tree as Record<string, unknown>)).toThrow(message);
  });
});

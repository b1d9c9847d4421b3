// Renders the commented sample config printed by `portier generate-config`, from the schema itself,
// so the sample can never drift from what the loader accepts.
import type { TSchema } from "@sinclair/typebox";
import { ConfigSchema } from "./schema";

function render(schema: TSchema, indent: string, overrides: Record<string, unknown>): string[] {
  const lines: string[] = [];
  const properties = (schema as { properties?: Record<string, TSchema> }).properties ?? {};
  for (const [key, prop] of Object.entries(properties)) {
    if (prop.description) lines.push(`${indent}# ${prop.description}`);
    if (prop.type === "object" && prop.properties) {
      // An optional section without a default (cas, registration.recaptcha) is off until written:
      // shown commented out, since its required keys have no value to show.
      const required = (schema as { required?: string[] }).required ?? [];
      if (!required.includes(key) && prop.default === undefined) {
        lines.push(`${indent}#${key}:`, ...render(prop, indent + "  ", {}).map((line) => line.replace(/^(\s*)#?/, "$1#")));
        continue;
      }
      lines.push(`${indent}${key}:`);
      lines.push(...render(prop, indent + "  ", (overrides[key] as Record<string, unknown>) ?? {}));
      continue;
    }
    const value = key in overrides ? overrides[key] : prop.default;
    // Keys without a default are optional: shown commented out.
    lines.push(value === undefined ? `${indent}#${key}:` : `${indent}${key}: ${JSON.stringify(value)}`);
  }
  return lines;
}

export function sampleConfig(overrides: { server_name?: string } = {}): string {
  return ["# Portier configuration. Every key can also be set with an environment variable:", "# PORTIER_SERVER_NAME, PORTIER_BIND, PORTIER_DATA_DIR, PORTIER_DATABASE__DRIVER, ...", "", ...render(ConfigSchema, "", overrides), ""].join("\n");
}

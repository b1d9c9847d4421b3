// Checks a plugin's config against the JSON Schema it declares (TypeBox schemas are JSON Schema).
// The subset plugins need: type, properties, required, additionalProperties, items, enum, minimum,
// maximum, minLength, maxLength, pattern. Each problem names the key, e.g. "key 'deny.servers': ...".

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  anyOf?: Schema[];
};

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function matchesType(value: unknown, type: string): boolean {
  const actual = typeOf(value);
  return actual === type || (type === "number" && actual === "integer");
}

export function configErrors(schema: unknown, value: unknown, path = ""): string[] {
  const s = schema as Schema;
  if (typeof s !== "object" || s === null) return [];
  const at = path === "" ? "" : `key '${path}': `;
  if (s.anyOf) {
    return s.anyOf.some((option) => configErrors(option, value, path).length === 0) ? [] : [`${at}matches none of the allowed shapes`];
  }
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (!types.some((t) => matchesType(value, t))) return [`${at}expected ${types.join(" or ")}, got ${typeOf(value)}`];
  }
  if (s.enum && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) return [`${at}must be one of ${s.enum.map((e) => JSON.stringify(e)).join(", ")}`];
  const problems: string[] = [];
  if (typeof value === "number") {
    if (s.minimum !== undefined && value < s.minimum) problems.push(`${at}must be at least ${s.minimum}`);
    if (s.maximum !== undefined && value > s.maximum) problems.push(`${at}must be at most ${s.maximum}`);
  }
  if (typeof value === "string") {
    if (s.minLength !== undefined && value.length < s.minLength) problems.push(`${at}must be at least ${s.minLength} characters`);
    if (s.maxLength !== undefined && value.length > s.maxLength) problems.push(`${at}must be at most ${s.maxLength} characters`);
    if (s.pattern !== undefined && !new RegExp(s.pattern, "u").test(value)) problems.push(`${at}must match ${s.pattern}`);
  }
  if (Array.isArray(value) && s.items) value.forEach((item, i) => problems.push(...configErrors(s.items, item, `${path}[${i}]`)));
  if (typeOf(value) === "object") {
    const object = value as Record<string, unknown>;
    for (const key of s.required ?? []) if (!(key in object)) problems.push(`key '${path ? `${path}.` : ""}${key}': required`);
    for (const [key, child] of Object.entries(object)) {
      const childPath = path ? `${path}.${key}` : key;
      const declared = s.properties?.[key];
      if (declared) problems.push(...configErrors(declared, child, childPath));
      else if (s.additionalProperties === false) problems.push(`key '${childPath}': unknown`);
      else if (typeof s.additionalProperties === "object") problems.push(...configErrors(s.additionalProperties, child, childPath));
    }
  }
  return problems;
}

// Application service registrations (application-service-api "Registration"): the YAML files an
// operator lists in the config's `app_services`, parsed and checked at start. A bad file stops the
// start with one message naming the file and the field.
import { readFileSync } from "node:fs";

export interface Namespace {
  readonly exclusive: boolean;
  /** The registration's regex as written, and compiled. */
  readonly regex: string;
  readonly pattern: RegExp;
}

export interface AppServiceRegistration {
  readonly id: string;
  /** Where transactions and queries go; null: the application service receives nothing. */
  readonly url: string | null;
  readonly asToken: string;
  readonly hsToken: string;
  readonly senderLocalpart: string;
  readonly namespaces: { readonly users: readonly Namespace[]; readonly aliases: readonly Namespace[]; readonly rooms: readonly Namespace[] };
  readonly rateLimited: boolean;
  readonly protocols: readonly string[];
  /** Where it was read from, for messages. */
  readonly file: string;
}

export class RegistrationError extends Error {
  override name = "RegistrationError";
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Parses one registration (the YAML text of `file`); throws RegistrationError naming the file and field. */
export function parseRegistration(text: string, file: string): AppServiceRegistration {
  const fail = (field: string, problem: string): never => {
    throw new RegistrationError(`application service registration ${file}: '${field}' ${problem}`);
  };
  let doc: unknown;
  try {
    doc = Bun.YAML.parse(text);
  } catch (error) {
    throw new RegistrationError(`application service registration ${file}: not valid YAML: ${(error as Error).message}`);
  }
  if (!isObject(doc)) throw new RegistrationError(`application service registration ${file}: the top level must be a mapping of keys`);
  const requiredString = (field: string): string => {
    const value = doc[field];
    if (value === undefined || value === null) return fail(field, "is required");
    if (typeof value !== "string" || value.length === 0) return fail(field, "must be a non-empty string");
    return value;
  };
  const id = requiredString("id");
  const asToken = requiredString("as_token");
  const hsToken = requiredString("hs_token");
  const senderLocalpart = requiredString("sender_localpart");
  // The spec makes url required but nullable: null means no traffic is pushed to the service.
  if (!("url" in doc)) fail("url", "is required (null when the application service receives no traffic)");
  const url = doc.url;
  if (url !== null) {
    if (typeof url !== "string") fail("url", "must be a string or null");
    let parsed: URL | undefined;
    try {
      parsed = new URL(url as string);
    } catch {
      fail("url", `is not a URL (got ${JSON.stringify(url)})`);
    }
    if (parsed!.protocol !== "http:" && parsed!.protocol !== "https:") fail("url", "must be an http:// or https:// URL");
  }
  const namespaces = doc.namespaces ?? {};
  if (!isObject(namespaces)) fail("namespaces", "must be a mapping with users, aliases and rooms");
  const namespaceList = (kind: "users" | "aliases" | "rooms"): Namespace[] => {
    const list = (namespaces as Record<string, unknown>)[kind] ?? [];
    if (!Array.isArray(list)) return fail(`namespaces.${kind}`, "must be a list");
    return list.map((entry, i) => {
      const field = `namespaces.${kind}[${i}]`;
      if (!isObject(entry)) return fail(field, "must be a mapping with regex and exclusive");
      if (typeof entry.regex !== "string" || entry.regex.length === 0) return fail(`${field}.regex`, "must be a non-empty string");
      if (typeof entry.exclusive !== "boolean") return fail(`${field}.exclusive`, "must be true or false");
      let pattern: RegExp;
      try {
        // Python's re.match, which Synapse uses: anchored at the start only.
        pattern = new RegExp(`^(?:${entry.regex})`);
      } catch (error) {
        return fail(`${field}.regex`, `is not a valid regular expression: ${(error as Error).message}`);
      }
      return { exclusive: entry.exclusive, regex: entry.regex, pattern };
    });
  };
  const rateLimited = doc.rate_limited ?? true;
  if (typeof rateLimited !== "boolean") fail("rate_limited", "must be true or false");
  const protocols = doc.protocols ?? [];
  if (!Array.isArray(protocols) || !protocols.every((p) => typeof p === "string")) fail("protocols", "must be a list of strings");
  return {
    id,
    url: url === null ? null : (url as string).replace(/\/+$/, ""),
    asToken,
    hsToken,
    senderLocalpart,
    namespaces: { users: namespaceList("users"), aliases: namespaceList("aliases"), rooms: namespaceList("rooms") },
    rateLimited: rateLimited as boolean,
    protocols: protocols as string[],
    file,
  };
}

/** Reads every registration file; ids and as_tokens must be unique among them. */
export function loadRegistrations(files: readonly string[]): AppServiceRegistration[] {
  const registrations = files.map((file) => {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      throw new RegistrationError(`cannot read application service registration ${file}: ${(error as Error).message}`);
    }
    return parseRegistration(text, file);
  });
  const ids = new Map<string, string>();
  const tokens = new Map<string, string>();
  for (const r of registrations) {
    if (ids.has(r.id)) throw new RegistrationError(`application service registration ${r.file}: 'id' ${r.id} is also the id of ${ids.get(r.id)}`);
    if (tokens.has(r.asToken)) throw new RegistrationError(`application service registration ${r.file}: 'as_token' is also the as_token of ${tokens.get(r.asToken)}`);
    ids.set(r.id, r.file);
    tokens.set(r.asToken, r.file);
  }
  return registrations;
}

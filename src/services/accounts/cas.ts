// Single sign-on through a CAS server (client-server-api "SSO client login/authentication"; CAS
// protocol 2.0/3.0): the browser is sent to the CAS server's /login with a service URL back to
// /login/cas/ticket; the ticket it brings is checked at the CAS server's /proxyValidate (with the
// same service URL), and the CAS user is mapped to a Matrix user ID, registered on first login.
// The spec names the flow but leaves the protocol to the server; the details (r0 ticket path,
// proxyValidate, the mapping of names, logging in an existing user of the same name) are Synapse's.
import { MatrixError } from "../../protocol/errors";

export interface CasConfig {
  readonly server_url: string;
  readonly service_url?: string;
  readonly displayname_attribute?: string;
  readonly required_attributes: Record<string, string | null>;
  readonly verify_tls: boolean;
}

export interface CasUser {
  readonly user: string;
  readonly attributes: Record<string, string[]>;
}

const VALIDATE_TIMEOUT_MS = 10_000;
/** A CAS answer is a small XML document; a larger one is refused. */
const MAX_ANSWER_CHARS = 256 * 1024;

/**
 * A localpart from a name of another system, by the appendices' "Mapping from other character
 * sets" (the non-bijective variant, as Synapse's CAS and SAML logins): UTF-8 bytes, A-Z
 * downcased, bytes outside [a-z0-9._-/] (and "=") written as =xx, and a leading "_" as =5f (the
 * underscore prefix is reserved for application services).
 */
export function mapToLocalpart(name: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(name)) {
    const c = byte >= 0x41 && byte <= 0x5a ? byte + 0x20 : byte;
    const ch = String.fromCharCode(c);
    out += /[a-z0-9._\-/]/.test(ch) ? ch : `=${c.toString(16).padStart(2, "0")}`;
  }
  return out.replace(/^_/, "=5f");
}

const XML_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
const decodeXml = (s: string) =>
  s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|amp|lt|gt|quot|apos);/g, (_, e: string) =>
    e.startsWith("#x") ? String.fromCodePoint(parseInt(e.slice(2), 16)) : e.startsWith("#") ? String.fromCodePoint(parseInt(e.slice(1), 10)) : XML_ENTITIES[e]!);
const stripCdata = (s: string) => s.replace(/<!\[CDATA\[([\s\S]*?)\]\]>/g, (_, t: string) => t.replace(/[&<>]/g, (ch) => `&${{ "&": "amp", "<": "lt", ">": "gt" }[ch]};`));

/**
 * The user and attributes of a CAS serviceResponse (CAS protocol 3.0 §2.5.2), whatever namespace
 * prefix it uses; undefined for an authenticationFailure or anything else.
 */
export function parseCasResponse(xml: string): CasUser | undefined {
  const body = stripCdata(xml);
  const success = /<(?:[\w.-]+:)?authenticationSuccess\b[^>]*>([\s\S]*?)<\/(?:[\w.-]+:)?authenticationSuccess>/.exec(body);
  if (!success) return undefined;
  const inner = success[1]!;
  const user = /<(?:[\w.-]+:)?user\b[^>]*>([\s\S]*?)<\/(?:[\w.-]+:)?user>/.exec(inner);
  const name = user ? decodeXml(user[1]!).trim() : "";
  if (name === "") return undefined;
  const attributes: Record<string, string[]> = {};
  const block = /<(?:[\w.-]+:)?attributes\b[^>]*>([\s\S]*?)<\/(?:[\w.-]+:)?attributes>/.exec(inner);
  if (block) {
    for (const m of block[1]!.matchAll(/<(?:[\w.-]+:)?([\w.-]+)\b[^>]*>([^<]*)<\/(?:[\w.-]+:)?\1>/g)) {
      (attributes[m[1]!] ??= []).push(decodeXml(m[2]!).trim());
    }
  }
  return { user: name, attributes };
}

export class CasClient {
  constructor(private readonly config: CasConfig, private readonly fetchFn: typeof fetch = fetch) {}

  /** Where the CAS server sends the browser back: this server's r0 ticket endpoint, with `params` (as Synapse, whose path sytest checks). */
  serviceUrl(base: string, params: Record<string, string>): string {
    const root = (this.config.service_url ?? base).replace(/\/+$/, "");
    const query = Object.entries(params).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
    return `${root}/_matrix/client/r0/login/cas/ticket?${query}`;
  }

  /** The CAS server's login page, which comes back to `service` with a ticket. */
  loginUrl(service: string): string {
    return `${this.config.server_url.replace(/\/+$/, "")}/login?service=${encodeURIComponent(service)}`;
  }

  /**
   * The CAS user a ticket proves, asked of the CAS server's /proxyValidate with the service URL
   * the ticket was issued for. A refused ticket or a user without the required attributes: 403.
   */
  async validate(ticket: string, service: string): Promise<CasUser> {
    const url = `${this.config.server_url.replace(/\/+$/, "")}/proxyValidate?ticket=${encodeURIComponent(ticket)}&service=${encodeURIComponent(service)}`;
    let text: string;
    try {
      const res = await this.fetchFn(url, {
        redirect: "manual",
        signal: AbortSignal.timeout(VALIDATE_TIMEOUT_MS),
        ...(this.config.verify_tls ? {} : { tls: { rejectUnauthorized: false } }),
      } as RequestInit);
      if (!res.ok) throw new Error(`it answered ${res.status}`);
      text = await res.text();
    } catch (error) {
      throw new MatrixError("M_UNKNOWN", `The CAS server could not be asked: ${(error as Error).message}`, 502);
    }
    const user = text.length <= MAX_ANSWER_CHARS ? parseCasResponse(text) : undefined;
    if (!user) throw new MatrixError("M_FORBIDDEN", "The CAS server did not accept the ticket", 403);
    for (const [name, wanted] of Object.entries(this.config.required_attributes)) {
      const values = user.attributes[name];
      if (!values || (wanted !== null && !values.includes(wanted))) throw new MatrixError("M_FORBIDDEN", "You are not authorised to log in here.", 403);
    }
    return user;
  }

  /** The display name a new user starts with: the configured attribute, else none (the localpart). */
  displayName(user: CasUser): string | undefined {
    const attribute = this.config.displayname_attribute;
    return attribute ? user.attributes[attribute]?.[0] : undefined;
  }
}

// Email addresses this homeserver validates itself (client-server-api /register/email/requestToken
// and /account/3pid/email/requestToken: "the homeserver should validate the email itself, either by
// sending a validation email itself or by using a service it has control over"): the server mails
// a link holding a random token; following it validates the session, which the client then names
// by sid and client_secret (registration's m.login.email.identity stage, POST /account/3pid/add).
// Sessions live in memory, as user-interactive auth sessions do: a restart asks the user to
// request a new email. The request/session rules (client_secret + address + send_attempt) are the
// identity service API's, which the spec points to.
import { randomBytes, timingSafeEqual } from "node:crypto";
import { MatrixError } from "../../protocol/errors";
import type { Clock, Logger } from "../runtime";
import type { Mailer } from "./smtp";

/** The path of the link in the email (as Synapse's, under /_matrix so that proxies pass it). */
export const SUBMIT_TOKEN_PATH = "/_matrix/client/unstable/registration/email/submit_token";

/** A token must be used within an hour; a validated session must be used within a day. */
const TOKEN_LIFETIME_MS = 60 * 60 * 1000;
const SESSION_LIFETIME_MS = 24 * 60 * 60 * 1000;

/** client_secret's grammar (client-server-api "Adding Account Administrative Contact Information"). */
const CLIENT_SECRET = /^[0-9a-zA-Z.=_-]{1,255}$/;
/** Enough of an address to mail: one @, something on both sides, no spaces or angle brackets. */
const EMAIL = /^[^@\s<>"]+@[^@\s<>"]+\.?[^@\s<>"]*$/;

export interface ValidatedThreepid {
  readonly medium: "email";
  readonly address: string;
  readonly validatedAt: number;
}

interface Session {
  readonly sid: string;
  readonly clientSecret: string;
  readonly address: string;
  readonly token: string;
  readonly createdTs: number;
  sendAttempt: number;
  nextLink?: string;
  validatedTs?: number;
}

export interface EmailValidationDeps {
  readonly mailer: Mailer;
  /** The From: of validation emails. */
  readonly from: string;
  readonly serverName: string;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** Email addresses are compared and stored in lower case (as Synapse canonicalises them). */
export const canonicalEmail = (address: string) => address.trim().toLowerCase();

const sameSecret = (a: string, b: string) => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

export class EmailValidation {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly deps: EmailValidationDeps) {}

  /**
   * Starts (or, for the same client_secret and address without a higher send_attempt, repeats
   * without mailing again) a validation session and mails its link; resolves with the sid.
   * `linkBase` is where this server's client API is reached (public_baseurl or the request's origin).
   */
  async requestToken(input: { email: string; clientSecret: string; sendAttempt: number; nextLink?: string; linkBase: string; purpose: string }): Promise<string> {
    if (!CLIENT_SECRET.test(input.clientSecret)) throw new MatrixError("M_INVALID_PARAM", "client_secret must be 1-255 characters of [0-9a-zA-Z.=_-]");
    if (!Number.isSafeInteger(input.sendAttempt) || input.sendAttempt < 0) throw new MatrixError("M_INVALID_PARAM", "send_attempt must be a non-negative integer");
    const address = canonicalEmail(input.email);
    if (!EMAIL.test(address) || address.length > 320) throw new MatrixError("M_INVALID_PARAM", "Not a valid email address");
    this.expire();
    const existing = [...this.sessions.values()].find((s) => s.address === address && sameSecret(s.clientSecret, input.clientSecret));
    if (existing && input.sendAttempt <= existing.sendAttempt) return existing.sid;
    const session: Session = existing ?? {
      sid: randomBytes(12).toString("base64url"),
      clientSecret: input.clientSecret,
      address,
      token: randomBytes(24).toString("base64url"),
      createdTs: this.deps.clock.now(),
      sendAttempt: input.sendAttempt,
    };
    session.sendAttempt = input.sendAttempt;
    if (input.nextLink !== undefined) session.nextLink = input.nextLink;
    const link = `${input.linkBase.replace(/\/+$/, "")}${SUBMIT_TOKEN_PATH}?token=${encodeURIComponent(session.token)}&client_secret=${encodeURIComponent(session.clientSecret)}&sid=${encodeURIComponent(session.sid)}`;
    try {
      await this.deps.mailer({
        from: this.deps.from,
        to: address,
        subject: `Validate your email on ${this.deps.serverName}`,
        text: `Someone asked to use this email address ${input.purpose} on the Matrix server ${this.deps.serverName}.\r\n\r\nIf that was you, follow this link to confirm:\r\n\r\n${link}\r\n\r\nIf it was not, ignore this email.\r\n`,
      });
    } catch (error) {
      this.deps.logger.log("warn", "a validation email could not be sent", { error: String(error) });
      throw new MatrixError("M_UNKNOWN", "The validation email could not be sent", 502);
    }
    this.sessions.set(session.sid, session);
    return session.sid;
  }

  /** The link in the email: validates the session; its next_link, if the client gave one. */
  submitToken(sid: string, clientSecret: string, token: string): { nextLink?: string } {
    const session = this.live(sid, clientSecret);
    if (!session || !sameSecret(session.token, token)) throw new MatrixError("M_UNKNOWN", "The link is not valid or has expired", 400);
    if (session.validatedTs === undefined) {
      if (session.createdTs + TOKEN_LIFETIME_MS < this.deps.clock.now()) throw new MatrixError("M_UNKNOWN", "The link has expired: request a new email", 400);
      session.validatedTs = this.deps.clock.now();
    }
    return { nextLink: session.nextLink };
  }

  /** The address a validated session proves; 401 M_UNAUTHORIZED-like errors are the caller's to give. */
  validated(sid: string, clientSecret: string): ValidatedThreepid | undefined {
    const session = this.live(sid, clientSecret);
    if (!session || session.validatedTs === undefined) return undefined;
    return { medium: "email", address: session.address, validatedAt: session.validatedTs };
  }

  private live(sid: string, clientSecret: string): Session | undefined {
    const session = this.sessions.get(sid);
    if (!session || !sameSecret(session.clientSecret, clientSecret)) return undefined;
    if (session.createdTs + SESSION_LIFETIME_MS < this.deps.clock.now()) {
      this.sessions.delete(sid);
      return undefined;
    }
    return session;
  }

  private expire(): void {
    const cutoff = this.deps.clock.now() - SESSION_LIFETIME_MS;
    for (const [sid, s] of this.sessions) if (s.createdTs < cutoff) this.sessions.delete(sid);
  }
}

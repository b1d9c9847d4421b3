// User-interactive authentication (client-server-api "User-Interactive Authentication API"):
// a session id per flow, kept in memory, with the stages completed so far. Portier offers
// m.login.dummy (and m.login.recaptcha when configured) for registration, and m.login.password
// (and m.login.sso with a CAS server) for sensitive account changes.
//
// A session authenticates "the same API call" (the spec's words): it is bound to the method and
// path of the request that began it, and a request for another operation naming it is refused with
// 403, as Synapse does (the spec names no status; Synapse's "Requested operation has changed during
// the UI authentication session"). Without that, a password typed to delete one device could be
// replayed to delete another.
import { randomBytes } from "node:crypto";
import { MatrixError } from "../../protocol/errors";
import type { Clock } from "../runtime";

export type Flow = { stages: string[] };

interface UiaSession {
  completed: Set<string>;
  createdTs: number;
  /** "METHOD /path" of the request that began the session. */
  operation: string;
  /** Request parameters remembered for later requests of the session (registration). */
  params?: Record<string, unknown>;
  /** The user this session registered: a retry answers with a new login of that user. */
  registeredUserId?: string;
  /** The user single sign-on named when it completed m.login.sso for this session. */
  ssoUserId?: string;
  /** The address m.login.email.identity proved, added to the account registration makes. */
  threepid?: { medium: string; address: string; validatedAt: number };
}

const SESSION_LIFETIME_MS = 30 * 60 * 1000;

export class UserInteractiveAuth {
  private readonly sessions = new Map<string, UiaSession>();

  constructor(private readonly clock: Clock) {}

  /**
   * The session a request continues (`sessionId`, given by the client) or a new one for its
   * operation. A session of another operation is 403; an unknown or expired one is replaced.
   */
  open(sessionId: string | undefined, operation: string): string {
    const existing = sessionId === undefined ? undefined : this.live(sessionId);
    if (existing) {
      if (existing.operation !== operation) throw new MatrixError("M_FORBIDDEN", "Requested operation has changed during the UI authentication session.", 403);
      return sessionId!;
    }
    this.expire();
    const id = randomBytes(18).toString("base64url");
    this.sessions.set(id, { completed: new Set(), createdTs: this.clock.now(), operation });
    return id;
  }

  /**
   * The 401 body that starts or continues a flow. `completed` is listed whenever the client tried a
   * stage (an error is given), even when empty, as Synapse answers: clients and sytest look for it.
   */
  challenge(flows: Flow[], sessionId: string, error?: MatrixError, params: Record<string, unknown> = {}): MatrixError {
    const completed = [...(this.live(sessionId)?.completed ?? [])];
    return new MatrixError(error?.errcode ?? "M_UNAUTHORIZED", error?.message ?? "Authentication required", 401, {
      flows,
      params,
      session: sessionId,
      ...(completed.length || error ? { completed } : {}),
    });
  }

  /**
   * Records a completed stage (none: the client only names the session, after completing a stage
   * elsewhere) and answers whether some flow is now complete. A finished session is forgotten
   * unless `keep` (registration keeps it, so that a retry gets the same account).
   */
  complete(flows: Flow[], sessionId: string, stage: string | undefined, keep = false): boolean {
    const session = this.live(sessionId);
    if (!session) return false;
    if (stage !== undefined) session.completed.add(stage);
    const done = flows.some((f) => f.stages.every((s) => session.completed.has(s)));
    if (done && !keep) this.sessions.delete(sessionId);
    return done;
  }

  /**
   * The request's parameters, remembered in the session: a request that gives any replaces them,
   * one that gives none (only `auth`) uses those of an earlier request. The spec is silent; Synapse
   * does this for /register, where clients send the parameters once and then only the auth dict.
   */
  params<T extends Record<string, unknown>>(sessionId: string, given: T): T {
    const session = this.live(sessionId);
    if (!session) return given;
    if (Object.keys(given).length > 0 || session.params === undefined) session.params = { ...given };
    return session.params as T;
  }

  /**
   * Records m.login.sso as completed by `userId` (the SSO server's answer comes on another request,
   * the ticket endpoint, not on the operation's). False when there is no such live session.
   */
  completeSso(sessionId: string, userId: string): boolean {
    const session = this.live(sessionId);
    if (!session) return false;
    session.completed.add("m.login.sso");
    session.ssoUserId = userId;
    return true;
  }

  /** The user who completed m.login.sso for the session, if one did. */
  ssoUser(sessionId: string): string | undefined {
    return this.live(sessionId)?.ssoUserId;
  }

  /** Remembers the 3PID a stage proved (m.login.email.identity). */
  setThreepid(sessionId: string, threepid: { medium: string; address: string; validatedAt: number }): void {
    const session = this.live(sessionId);
    if (session) session.threepid = threepid;
  }

  threepid(sessionId: string): { medium: string; address: string; validatedAt: number } | undefined {
    return this.live(sessionId)?.threepid;
  }

  /** The user a registration session already made, if any. */
  registeredUser(sessionId: string): string | undefined {
    return this.live(sessionId)?.registeredUserId;
  }

  /** Marks the registration done; the password is forgotten, as nothing needs it again. */
  setRegisteredUser(sessionId: string, userId: string): void {
    const session = this.live(sessionId);
    if (!session) return;
    session.registeredUserId = userId;
    if (session.params) delete session.params.password;
  }

  private live(sessionId: string): UiaSession | undefined {
    const session = this.sessions.get(sessionId);
    if (session && session.createdTs < this.clock.now() - SESSION_LIFETIME_MS) {
      this.sessions.delete(sessionId);
      return undefined;
    }
    return session;
  }

  private expire(): void {
    const cutoff = this.clock.now() - SESSION_LIFETIME_MS;
    for (const [id, s] of this.sessions) if (s.createdTs < cutoff) this.sessions.delete(id);
  }
}

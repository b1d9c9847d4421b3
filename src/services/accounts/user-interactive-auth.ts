// User-interactive authentication (client-server-api "User-Interactive Authentication API"):
// a session id per flow, kept in memory, with the stages completed so far. Portier offers
// m.login.dummy for registration and m.login.password for sensitive account changes.
import { randomBytes } from "node:crypto";
import { MatrixError } from "../../protocol/errors";
import type { Clock } from "../runtime";

export type Flow = { stages: string[] };

interface UiaSession {
  completed: Set<string>;
  createdTs: number;
}

const SESSION_LIFETIME_MS = 30 * 60 * 1000;

export class UserInteractiveAuth {
  private readonly sessions = new Map<string, UiaSession>();

  constructor(private readonly clock: Clock) {}

  /** The 401 body that starts or continues a flow. */
  challenge(flows: Flow[], session: string | undefined, error?: MatrixError): MatrixError {
    const id = session && this.sessions.has(session) ? session : this.newSession();
    const completed = [...(this.sessions.get(id)?.completed ?? [])];
    return new MatrixError(error?.errcode ?? "M_UNAUTHORIZED", error?.message ?? "Authentication required", 401, {
      flows,
      params: {},
      session: id,
      ...(completed.length ? { completed } : {}),
    });
  }

  private newSession(): string {
    this.expire();
    const id = randomBytes(18).toString("base64url");
    this.sessions.set(id, { completed: new Set(), createdTs: this.clock.now() });
    return id;
  }

  /**
   * Records a completed stage and answers whether some flow is now complete. A stage given
   * without a session starts one (matrix-nio sends m.login.dummy on its first /register).
   */
  complete(flows: Flow[], sessionId: string | undefined, stage: string): { done: boolean; session: string } {
    const id = sessionId && this.sessions.has(sessionId) ? sessionId : this.newSession();
    const session = this.sessions.get(id)!;
    session.completed.add(stage);
    const done = flows.some((f) => f.stages.every((s) => session.completed.has(s)));
    if (done) this.sessions.delete(id);
    return { done, session: id };
  }

  private expire(): void {
    const cutoff = this.clock.now() - SESSION_LIFETIME_MS;
    for (const [id, s] of this.sessions) if (s.createdTs < cutoff) this.sessions.delete(id);
  }
}

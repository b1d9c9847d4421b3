// The plugins' spam decisions as the services apply them (issue 9). A service asks only when a spam
// policy is registered (`policies.hasSpamPolicies`), so a server without one pays nothing; the
// PolicySet runs the chain (first non-allow decision wins, timeouts, fail modes) and this turns the
// decision into what the client sees: a denial is a MatrixError with the plugin's errcode and
// message, and a shadow is either a fake success (events, invites, knocks) or, where Synapse's spam
// checker has no shadow (joins, room creation, registration, profiles, the directory), a denial.
import { randomBytes } from "node:crypto";
import type { Decision, MaybePromise, SpamPolicy } from "../../extensions";
import { MatrixError, type ErrCode } from "../../protocol/errors";
import type { EventIdFormat } from "../../protocol/room-versions";
import type { PolicySet } from "./policies";

/** What a service needs of the PolicySet for spam checks. */
export type SpamChecks = Pick<PolicySet, "spamCheck" | "hasSpamPolicies">;

export type SpamCall = (policy: SpamPolicy) => MaybePromise<Decision> | undefined;

/**
 * A policy's denial as the client sees it: the plugin's errcode and message, with the errcode's own
 * status where it has one that says more than "bad request" (M_LIMIT_EXCEEDED 429, M_NOT_FOUND 404,
 * M_TOO_LARGE 413, the parameter errors 400), and 403 otherwise: a policy refusing is a refusal.
 */
export function policyDenial(errcode: string, message: string): MatrixError {
  const code = errcode as ErrCode;
  const own = new MatrixError(code, message).status;
  const status = own !== 400 || code === "M_MISSING_PARAM" || code === "M_INVALID_PARAM" ? own : 403;
  return new MatrixError(code, message, status);
}

/** Asks the spam policies where a shadow fits: throws a denial, else says "allow" or "shadow". */
export async function spamVerdict(policies: SpamChecks, call: SpamCall): Promise<"allow" | "shadow"> {
  const decision = await policies.spamCheck(call);
  if (decision.kind === "deny") throw policyDenial(decision.errcode, decision.message);
  return decision.kind === "shadow" ? "shadow" : "allow";
}

/**
 * Asks the spam policies where a shadow does not fit: a denial is thrown as it is, and a shadow is
 * refused with `shadowRefusal` (M_FORBIDDEN). Synapse's spam checker answers these callbacks with
 * allow or an error only; a pretended join or room would be noticed at once by the client.
 */
export async function requireSpamAllowed(policies: SpamChecks, call: SpamCall, shadowRefusal: string): Promise<void> {
  if ((await spamVerdict(policies, call)) === "shadow") throw new MatrixError("M_FORBIDDEN", shadowRefusal);
}

/**
 * An event ID in the room version's format for an event that was shadowed: the client is answered
 * as if it had been sent, and the ID names nothing (GET /event answers 404, as for any event the
 * user cannot see).
 */
export function fakeEventId(format: EventIdFormat, serverName: string): string {
  const bytes = randomBytes(32);
  if (format === "server-chosen") return `$${bytes.toString("base64url").slice(0, 18)}:${serverName}`;
  if (format === "reference-hash-base64") return `$${bytes.toString("base64").replace(/=+$/, "")}`;
  return `$${bytes.toString("base64url")}`;
}

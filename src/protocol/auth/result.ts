// The outcome of an authorization check: a value, never an exception, so state resolution can run
// thousands of checks and the PDU pipeline can record the reason with the rejection.

export type AuthResult = { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

export const allow = (): AuthResult => ({ allowed: true });
export const reject = (reason: string): AuthResult => ({ allowed: false, reason });

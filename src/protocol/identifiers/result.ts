// Parsers here return their errors instead of throwing: a malformed ID received over federation
// is ordinary input, and the caller decides whether it means 400, a dropped PDU or a rejection.

export type ParseResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: string };

export const ok = <T>(value: T): ParseResult<T> => ({ ok: true, value });
export const fail = <T = never>(error: string): ParseResult<T> => ({ ok: false, error });

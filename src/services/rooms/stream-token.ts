// Pagination tokens for /messages, /context and (later) /sync. A token names a position in the
// server's event stream: "s<N>" lies just after the event with stream ordering N (below zero for
// history fetched from other servers, which comes before everything this server held), so
//   - paginating backwards from "s<N>" returns events with ordering <= N, newest first;
//   - paginating forwards from "s<N>" returns events with ordering > N, oldest first.
// Clients treat tokens as opaque; the "s" prefix leaves room for richer (multi-stream) tokens.
import { MatrixError } from "../../protocol/errors";

export type StreamPosition = number;

export function streamToken(position: StreamPosition): string {
  return `s${position}`;
}

/**
 * The position a token names; M_INVALID_PARAM when it is not one of ours. A /sync token
 * ("s<N>_<more streams>", sync-token.ts) names the same event position N (the spec lets clients pass
 * next_batch to /messages).
 */
export function parseStreamToken(token: string, param = "from"): StreamPosition {
  const match = /^s(-?\d{1,15})(?:_[0-9a-z_]{1,80})?$/.exec(token);
  if (!match) throw new MatrixError("M_INVALID_PARAM", `Invalid pagination token in '${param}'`);
  return Number(match[1]);
}

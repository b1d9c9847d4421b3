// The /sync `next_batch` / `since` token (client-server-api "Syncing"): one position per stream that
// can change what a user sees, "s<events>_<accountdata>_<receipts>_<typing>[_<outofband>]_<boot>".
//   - events, account data, receipts and out-of-band memberships (rooms this server does not hold,
//     out-of-band.ts) are database stream positions: valid across restarts;
//   - typing lives in memory and its serial restarts with the process, so the token also names the
//     process (`boot`) that issued the serial; a serial from another boot reads as 0 (resend all).
// The out-of-band position is written only once that stream has begun (> 0), so tokens keep their
// five-part form until then; a five-part token (also one issued before the stream existed) reads as 0.
// The end-to-end encryption stream (device list changes and to-device messages, e2ee/) follows the
// same rule, as a part marked "e" before the boot: "..._e<e2ee>_<boot>"; a token without it reads as
// 0. The marker keeps the optional parts apart (the boot, always last, is what follows them).
// Presence (in memory, like typing) follows as "_p<serial>" before the boot; from another boot it
// reads as 0.
// The leading "s<events>" is also a /messages token (stream-token.ts reads just that part), and the
// boot stays last.
import { MatrixError } from "../../protocol/errors";

export interface SyncPosition {
  readonly events: number;
  readonly accountData: number;
  readonly receipts: number;
  readonly typing: number;
  /** The out-of-band membership stream; absent means 0. */
  readonly outOfBand?: number;
  /** The e2ee stream (device list changes, to-device messages); absent means 0. */
  readonly e2ee?: number;
  /** The presence serial (in memory, of `boot` like typing); absent means 0. */
  readonly presence?: number;
  /** The process that issued the typing serial. */
  readonly boot: string;
}

const TOKEN = /^s(\d{1,15})_(\d{1,15})_(\d{1,15})_(\d{1,15})(?:_(\d{1,15}))?(?:_e(\d{1,15}))?(?:_p(\d{1,15}))?_([0-9a-z]{1,16})$/;

export function formatSyncToken(p: SyncPosition): string {
  const outOfBand = p.outOfBand !== undefined && p.outOfBand > 0 ? `_${p.outOfBand}` : "";
  const e2ee = p.e2ee !== undefined && p.e2ee > 0 ? `_e${p.e2ee}` : "";
  const presence = p.presence !== undefined && p.presence > 0 ? `_p${p.presence}` : "";
  return `s${p.events}_${p.accountData}_${p.receipts}_${p.typing}${outOfBand}${e2ee}${presence}_${p.boot}`;
}

/** The position a `since` token names; 400 M_INVALID_PARAM when it is not one of ours. */
export function parseSyncToken(token: string): SyncPosition {
  const m = TOKEN.exec(token);
  if (!m) throw new MatrixError("M_INVALID_PARAM", "Invalid stream token in 'since'");
  const position: SyncPosition = { events: Number(m[1]), accountData: Number(m[2]), receipts: Number(m[3]), typing: Number(m[4]), boot: m[8]! };
  return { ...position, ...(m[5] === undefined ? {} : { outOfBand: Number(m[5]) }), ...(m[6] === undefined ? {} : { e2ee: Number(m[6]) }), ...(m[7] === undefined ? {} : { presence: Number(m[7]) }) };
}

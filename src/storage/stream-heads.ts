// The present position of every stream a sync token holds, read in one statement: /sync and
// sliding sync read them first on every request (an idle incremental sync is little else), and one
// read costs a fifth of five. The expressions are those of each stream's table module.
import type { Database } from "./database";

export interface StreamHeads {
  readonly events: number;
  readonly accountData: number;
  readonly receipts: number;
  readonly outOfBand: number;
  readonly e2ee: number;
}

export interface StreamHeadStore {
  heads(): Promise<StreamHeads>;
}

const SELECT_HEADS = `SELECT
  (SELECT max(stream_ordering) FROM events) AS events,
  (SELECT max(stream_position) FROM account_data) AS account_data,
  (SELECT max(stream_id) FROM receipts) AS receipts,
  (SELECT max(stream_position) FROM out_of_band_memberships) AS out_of_band,
  (SELECT max(position) FROM e2ee_stream) AS e2ee`;

type Row = Record<"events" | "account_data" | "receipts" | "out_of_band" | "e2ee", number | string | null>;

export class SqlStreamHeadStore implements StreamHeadStore {
  constructor(private readonly db: Database) {}

  async heads(): Promise<StreamHeads> {
    const row = (await this.db.get<Row>(SELECT_HEADS))!;
    return {
      events: Number(row.events ?? 0),
      accountData: Number(row.account_data ?? 0),
      receipts: Number(row.receipts ?? 0),
      outOfBand: Number(row.out_of_band ?? 0),
      e2ee: Number(row.e2ee ?? 0),
    };
  }
}

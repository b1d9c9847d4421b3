// appservice_room_lists: the rooms application services publish in their networks' room lists
// (application-service-api "Room directories": PUT /directory/list/appservice/{networkId}/{roomId}),
// apart from this server's own list (published_rooms). /publicRooms shows them for the network's
// third_party_instance_id ("{service id}|{network id}", as Synapse names instances) and with
// include_all_networks.
import type { Database } from "../database";
import type { Migration } from "../migrations";
import type { PublishedRoom } from "../stores";

export const APPSERVICE_ROOM_LISTS_MIGRATION: Migration = {
  version: 96,
  name: "appservice_room_lists",
  sqlite: `
    CREATE TABLE appservice_room_lists (
      appservice_id TEXT NOT NULL,
      network_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      published_ts INTEGER NOT NULL,
      PRIMARY KEY (appservice_id, network_id, room_id)
    ) STRICT, WITHOUT ROWID;
  `,
  postgres: `
    CREATE TABLE appservice_room_lists (
      appservice_id TEXT NOT NULL,
      network_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      published_ts BIGINT NOT NULL,
      PRIMARY KEY (appservice_id, network_id, room_id)
    );
  `,
};

export interface AppServiceRoomListStore {
  setPublished(appServiceId: string, networkId: string, roomId: string, published: boolean, ts: number): Promise<void>;
  /** The rooms of one network's list, or (network undefined) of every list, each room once, with its joined count. */
  publishedRooms(network?: { appServiceId: string; networkId: string }): Promise<PublishedRoom[]>;
}

const PUBLISH = `INSERT INTO appservice_room_lists (appservice_id, network_id, room_id, published_ts) VALUES (?, ?, ?, ?)
  ON CONFLICT (appservice_id, network_id, room_id) DO NOTHING`;
const UNPUBLISH = "DELETE FROM appservice_room_lists WHERE appservice_id = ? AND network_id = ? AND room_id = ?";
// The joined count as published_rooms counts it: current_state's membership column.
const JOINED = "(SELECT count(*) FROM current_state c WHERE c.room_id = l.room_id AND c.type = 'm.room.member' AND c.membership = 'join') AS joined";
const SELECT_NETWORK = `SELECT l.room_id AS room_id, ${JOINED} FROM appservice_room_lists l WHERE l.appservice_id = ? AND l.network_id = ?`;
const SELECT_ALL = `SELECT l.room_id AS room_id, ${JOINED} FROM (SELECT DISTINCT room_id FROM appservice_room_lists) l`;

export class SqlAppServiceRoomListStore implements AppServiceRoomListStore {
  constructor(private readonly db: Database) {}

  async setPublished(appServiceId: string, networkId: string, roomId: string, published: boolean, ts: number): Promise<void> {
    if (published) await this.db.run(PUBLISH, appServiceId, networkId, roomId, ts);
    else await this.db.run(UNPUBLISH, appServiceId, networkId, roomId);
  }

  async publishedRooms(network?: { appServiceId: string; networkId: string }): Promise<PublishedRoom[]> {
    const rows = network ? await this.db.all<{ room_id: string; joined: number }>(SELECT_NETWORK, network.appServiceId, network.networkId) : await this.db.all<{ room_id: string; joined: number }>(SELECT_ALL);
    return rows.map((r) => ({ roomId: r.room_id, joinedMembers: Number(r.joined) }));
  }
}

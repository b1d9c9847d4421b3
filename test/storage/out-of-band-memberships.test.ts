// The out-of-band membership store on every engine of this run: one row per (user, room), a
// server-wide stream position per write, and the event stream's position read in the same write.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { MIGRATIONS, storesOver, type Stores } from "../../src/storage/open";
import type { NewOutOfBandMembership } from "../../src/storage/tables/out-of-band-memberships";

const ALICE = "@alice:example.org";
const BOB = "@bob:example.org";
const REMOTE = "!remote:elsewhere.example";
const OTHER = "!other:elsewhere.example";

const membership = (userId: string, roomId: string, kind: NewOutOfBandMembership["membership"], n: number): NewOutOfBandMembership => ({
  userId,
  roomId,
  membership: kind,
  eventId: `$event${n}`,
  roomVersion: "10",
  eventJson: JSON.stringify({ type: "m.room.member", state_key: userId, content: { membership: kind }, n }),
  strippedStateJson: JSON.stringify([{ type: "m.room.name", state_key: "", sender: "@x:elsewhere.example", content: { name: `room ${n}` } }]),
});

test("migration 52 creates the table", () => {
  expect(MIGRATIONS.find((m) => m.version === 52)?.name).toBe("out_of_band_memberships");
});

describe.each(testDatabases.map((d) => [d.name, d] as const))("out-of-band memberships on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = storesOver(await database.open());
  });
  afterEach(async () => {
    await stores.db.close();
  });
  const count = async () => (await stores.db.get<{ n: number }>("SELECT count(*) AS n FROM out_of_band_memberships"))!.n;
  // A timeline event row, to move the room event stream on (its end is what a write records).
  const eventAt = (streamOrdering: number) =>
    stores.db.run(
      "INSERT INTO events (event_id, room_id, type, state_key, sender, depth, origin_server_ts, rejected_reason, outlier, soft_failed, state_snapshot, json, stream_ordering) VALUES (?, '!held:example.org', 'm.room.message', NULL, ?, 1, 1, NULL, 0, 0, NULL, '{}', ?)",
      `$held${streamOrdering}`,
      ALICE,
      streamOrdering,
    );

  test("empty: nothing stored, stream at 0", async () => {
    const store = stores.outOfBandMemberships;
    expect(await store.maxStreamPosition()).toBe(0);
    expect(await store.get(ALICE, REMOTE)).toBeUndefined();
    expect(await store.forUser(ALICE)).toEqual([]);
  });

  test("put stores a record with the next stream position and the event stream's end at the write", async () => {
    const store = stores.outOfBandMemberships;
    const first = await store.put(membership(ALICE, REMOTE, "invite", 1));
    expect(first).toEqual({ ...membership(ALICE, REMOTE, "invite", 1), streamPosition: 1, eventStreamPosition: 0 });
    expect(await store.get(ALICE, REMOTE)).toEqual(first);

    await eventAt(1);
    await eventAt(2);
    const second = await store.put(membership(BOB, REMOTE, "knock", 2));
    expect(second.streamPosition).toBe(2);
    expect(second.eventStreamPosition).toBe(2);
    expect(await store.get(BOB, REMOTE)).toEqual(second);
    expect(await store.maxStreamPosition()).toBe(2);
  });

  test("a later membership of the same user in the same room replaces the row and takes a new position", async () => {
    const store = stores.outOfBandMemberships;
    await store.put(membership(ALICE, REMOTE, "invite", 1));
    await store.put(membership(ALICE, OTHER, "knock", 2));
    await eventAt(5);
    const leave = await store.put(membership(ALICE, REMOTE, "leave", 3));
    expect(await count()).toBe(2);
    expect(leave).toMatchObject({ membership: "leave", eventId: "$event3", streamPosition: 3, eventStreamPosition: 5 });
    expect(await store.get(ALICE, REMOTE)).toEqual(leave);
    // The replaced row's position is not reused: the stream keeps growing.
    expect((await store.put(membership(ALICE, OTHER, "leave", 4))).streamPosition).toBe(4);
    expect(await store.maxStreamPosition()).toBe(4);
  });

  test("forUser lists one user's records oldest first, after a position", async () => {
    const store = stores.outOfBandMemberships;
    await store.put(membership(ALICE, REMOTE, "invite", 1)); // 1
    await store.put(membership(BOB, REMOTE, "invite", 2)); // 2
    await store.put(membership(ALICE, OTHER, "knock", 3)); // 3
    await store.put(membership(ALICE, REMOTE, "leave", 4)); // 4, replaces 1
    const all = await store.forUser(ALICE);
    expect(all.map((r) => [r.roomId, r.membership, r.streamPosition])).toEqual([
      [OTHER, "knock", 3],
      [REMOTE, "leave", 4],
    ]);
    expect((await store.forUser(ALICE, 3)).map((r) => r.streamPosition)).toEqual([4]);
    expect(await store.forUser(ALICE, 4)).toEqual([]);
    expect((await store.forUser(BOB)).map((r) => r.membership)).toEqual(["invite"]);
    expect(JSON.parse(all[0]!.strippedStateJson)).toEqual([{ type: "m.room.name", state_key: "", sender: "@x:elsewhere.example", content: { name: "room 3" } }]);
  });

  test("writes in one transaction each take their own position", async () => {
    const store = stores.outOfBandMemberships;
    const written = await Promise.all([1, 2, 3, 4, 5].map((n) => store.put(membership(`@u${n}:example.org`, REMOTE, "invite", n))));
    expect(written.map((r) => r.streamPosition).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5]);
    await stores.db.transaction(async () => {
      await store.put(membership(ALICE, REMOTE, "invite", 6));
      await store.put(membership(ALICE, OTHER, "invite", 7));
    });
    expect((await store.forUser(ALICE)).map((r) => r.streamPosition)).toEqual([6, 7]);
  });
});

// A room engine over a fresh in-memory store, signing as a throwaway key, with a settable clock.
import { RoomEngine, type EventSigner } from "../../src/services/rooms/room-engine";
import { signingKeyFromSeed } from "../../src/protocol/signing/keys";
import { signEvent } from "../../src/protocol/signing/event-signatures";
import type { JsonObject } from "../../src/protocol/json";
import type { RoomVersion } from "../../src/protocol/room-versions";
import type { DriverName } from "../../src/storage/database";
import { testStores } from "./databases";

export function testSigner(serverName: string, seedByte = 7): EventSigner & { publicKey: Uint8Array; keyId: string } {
  const key = signingKeyFromSeed("test", new Uint8Array(32).fill(seedByte));
  return {
    serverName,
    keyId: key.keyId,
    publicKey: key.publicKey,
    signEvent: (pdu: JsonObject, version: RoomVersion) => signEvent(pdu, version, serverName, key.keyId, key.seed),
  };
}

/** `database`: which engine the stores run on (better-sqlite3 by default). */
export async function testEngine(serverName = "example.org", database?: DriverName) {
  const stores = await testStores(database);
  const signer = testSigner(serverName);
  let now = 1_700_000_000_000;
  const clock = { now: () => now++ };
  const engine = new RoomEngine(stores.roomEvents, signer, clock, undefined, { log: () => {} });
  return { stores, store: stores.roomEvents, signer, engine, clock };
}

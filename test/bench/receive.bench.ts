// The receive pipeline's cost per PDU as a room grows: a room of N local members, then a remote
// user's messages taken through PduReceiver (signature, hash, auth against auth events, state before
// and current state, persist), better-sqlite3 in memory. Prints ms per received message by room size.
import { PduReceiver } from "../../src/services/rooms/pdu-receiver";
import { RoomEngine } from "../../src/services/rooms/room-engine";
import { roomVersion } from "../../src/protocol/room-versions";
import { testEngine, testSigner } from "../helpers/room-engine";

const version = roomVersion("10")!;
const SIZES = [10, 1_000, 5_000];
const MESSAGES = 500;

async function run(members: number): Promise<{ msPerEvent: number; p99: number }> {
  const { store, engine, signer, clock } = await testEngine("a.example");
  const remote = testSigner("b.example", 9);
  // A second engine over the same store builds the remote user's events (it never persists them).
  const builder = new RoomEngine(store, remote, clock, undefined, { log: () => {} });
  const receiver = new PduReceiver(store, engine);
  const lookup = (server: string) => (server === "a.example" ? signer.publicKey : server === "b.example" ? remote.publicKey : undefined);
  const creator = "@creator:a.example";
  const { eventId: createId } = await engine.createRoomWithCreateEvent(creator, version.id);
  const roomId = (await store.getEvent(createId))!.roomId;
  await engine.sendEvent(roomId, { type: "m.room.member", sender: creator, stateKey: creator, content: { membership: "join" } });
  await engine.sendEvent(roomId, { type: "m.room.power_levels", sender: creator, stateKey: "", content: { users: { [creator]: 100 } } });
  await engine.sendEvent(roomId, { type: "m.room.join_rules", sender: creator, stateKey: "", content: { join_rule: "public" } });
  for (let i = 0; i < members; i++) {
    const user = `@u${i}:a.example`;
    await engine.sendEvent(roomId, { type: "m.room.member", sender: user, stateKey: user, content: { membership: "join" } });
  }
  const bob = "@bob:b.example";
  const receive = async (input: { type: string; stateKey?: string; content: Record<string, unknown> }) => {
    const { pdu } = await builder.prepareEvent(roomId, version, { sender: bob, ...input, content: input.content as never });
    const outcome = await receiver.receive(remote.signEvent(pdu, version), lookup);
    if (outcome.outcome !== "accepted") throw new Error(`not accepted: ${outcome.outcome} ${"reason" in outcome ? outcome.reason : ""}`);
  };
  await receive({ type: "m.room.member", stateKey: bob, content: { membership: "join" } });
  const times: number[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const start = performance.now();
    await receive({ type: "m.room.message", content: { msgtype: "m.text", body: `message ${i}` } });
    times.push(performance.now() - start);
  }
  await store.atomically(async () => {}); // let the last group commit settle
  times.sort((x, y) => x - y);
  return { msPerEvent: times.reduce((a, b) => a + b, 0) / times.length, p99: times[Math.floor(times.length * 0.99)] };
}

console.log(`\n## receive.bench.ts — a remote user's messages through PduReceiver (better-sqlite3 in memory), ${MESSAGES} per size`);
console.log("| room members | ms per received message (mean) | p99 ms |");
console.log("|---:|---:|---:|");
for (const size of SIZES) {
  const { msPerEvent, p99 } = await run(size);
  console.log(`| ${size.toLocaleString("en")} | ${msPerEvent.toFixed(3)} | ${p99.toFixed(3)} |`);
}

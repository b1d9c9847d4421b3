// PUT /send/{txnId} (server-server-api "Transactions"): the PDUs of a transaction through the
// receive pipeline, each room's in the order sent (rooms side by side); the EDUs applied where the client API can use
// them (typing, receipts) and accepted otherwise. A transaction is processed once per (origin,
// txnId): a retry gets the first answer again, from memory or, after a restart, from the answers
// recorded for a day.
import { MatrixError } from "../../protocol/errors";
import { serverNameOf } from "../../protocol/identifiers";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { roomVersion } from "../../protocol/room-versions";
import { verifyEventSignatures } from "../../protocol/signing/event-signatures";
import { computeEventId } from "../../protocol/signing/event-id";
import type { ReceiptService, TypingService } from "../rooms/ephemeral";
import type { Logger } from "../runtime";
import type { FederationEventIngest } from "./event-ingest";
import type { ReceiveOutcome } from "../rooms/pdu-receiver";
import type { InboundTransactionStore } from "../../storage/stores";

export const MAX_PDUS_PER_TRANSACTION = 50;
export const MAX_EDUS_PER_TRANSACTION = 100;
/** Answers kept in memory for retried transactions; older ones are read back from the store. */
const REMEMBERED_TRANSACTIONS = 2000;
/** How long recorded answers are kept (the spec names no period; Synapse keeps them a day). */
export const ANSWER_RETENTION_MS = 24 * 60 * 60 * 1000;
const PRUNE_EVERY_MS = 60 * 60 * 1000;

export interface TransactionReceiverDeps {
  serverName: string;
  ingest: FederationEventIngest;
  /** Whether the room's server ACL lets the origin in (FederationRoomReader.aclAllows). */
  aclAllows(roomId: string, origin: string): Promise<boolean>;
  /** The version of a room we hold; undefined for others (their PDUs are dropped, but for answers to our invites and knocks). */
  roomVersionOf(roomId: string): Promise<string | undefined>;
  outOfBand: {
    current(userId: string, roomId: string): Promise<{ membership: string; roomVersion: string } | undefined>;
    record(input: { userId: string; roomId: string; roomVersion: string; membership: "leave" | "ban"; event: JsonObject; strippedState: JsonObject[] }): Promise<void>;
  };
  typing: TypingService;
  receipts: ReceiptService;
  /** End-to-end encryption EDUs (device list and signing key updates, to-device messages); without it they are accepted and left. */
  e2ee?: import("../e2ee/federation-edus").E2eeEduHandler;
  /** m.presence of the origin's users; without it they are accepted and left. */
  presence?: Pick<import("../presence/presence-service").PresenceService, "setRemote">;
  /** Where answers are recorded so that a retry after a restart is not processed again; without it, memory only. */
  answers?: InboundTransactionStore;
  now?: () => number;
  logger: Logger;
}

export type PduResults = Record<string, { error?: string }>;

type PduAnswer = { eventId: string; error?: string };

/**
 * A PDU's entry in the answer: its ID, with the reason when it was dropped. A rejected event was
 * processed (it is stored, rejected, and later events may cite it), so its entry is empty, as
 * Synapse answers: the spec keeps `error` for a PDU whose processing failed.
 */
function answerOf(outcome: ReceiveOutcome, fallbackId: string | undefined): PduAnswer | undefined {
  const eventId = outcome.eventId ?? fallbackId;
  if (eventId === undefined) return undefined;
  if (outcome.outcome === "dropped") return { eventId, error: outcome.reason };
  return { eventId };
}

export class TransactionReceiver {
  private readonly done = new Map<string, Promise<{ pdus: PduResults }>>();
  private lastPrune = 0;

  constructor(private readonly deps: TransactionReceiverDeps) {}

  receive(origin: string, txnId: string, body: unknown): Promise<{ pdus: PduResults }> {
    if (!isJsonObject(body)) throw new MatrixError("M_NOT_JSON", "The transaction must be a JSON object");
    const pdus = body.pdus ?? [];
    const edus = body.edus ?? [];
    if (!Array.isArray(pdus)) throw new MatrixError("M_BAD_JSON", "pdus must be an array");
    if (!Array.isArray(edus)) throw new MatrixError("M_BAD_JSON", "edus must be an array");
    if (pdus.length > MAX_PDUS_PER_TRANSACTION) throw new MatrixError("M_BAD_JSON", `A transaction holds at most ${MAX_PDUS_PER_TRANSACTION} PDUs`);
    if (edus.length > MAX_EDUS_PER_TRANSACTION) throw new MatrixError("M_BAD_JSON", `A transaction holds at most ${MAX_EDUS_PER_TRANSACTION} EDUs`);
    const key = `${origin}\u0000${txnId}`;
    const seen = this.done.get(key);
    if (seen) return seen;
    const run = this.answerOnce(origin, txnId, pdus, edus);
    this.done.set(key, run);
    if (this.done.size > REMEMBERED_TRANSACTIONS) this.done.delete(this.done.keys().next().value!);
    // A failure (the database went away) must be retried, not remembered.
    run.catch(() => this.done.delete(key));
    return run;
  }

  private async answerOnce(origin: string, txnId: string, pdus: unknown[], edus: unknown[]): Promise<{ pdus: PduResults }> {
    const answers = this.deps.answers;
    if (!answers) return this.process(origin, pdus, edus);
    const earlier = await answers.answerOf(origin, txnId);
    if (earlier !== undefined) return JSON.parse(earlier) as { pdus: PduResults };
    const answer = await this.process(origin, pdus, edus);
    // Recorded after processing: a crash in between means the retry is processed again, which
    // changes nothing (held PDUs are skipped, to-device messages carry their message_id).
    const now = (this.deps.now ?? Date.now)();
    await answers.recordAnswer(origin, txnId, JSON.stringify(answer), now);
    if (now - this.lastPrune >= PRUNE_EVERY_MS) {
      this.lastPrune = now;
      await answers.pruneBefore(now - ANSWER_RETENTION_MS);
    }
    return answer;
  }

  private async process(origin: string, pdus: unknown[], edus: unknown[]): Promise<{ pdus: PduResults }> {
    const results: PduResults = {};
    const byRoom = new Map<string | undefined, JsonObject[]>();
    for (const pdu of pdus) {
      if (!isJsonObject(pdu)) continue;
      const roomId = typeof pdu.room_id === "string" ? pdu.room_id : undefined;
      let list = byRoom.get(roomId);
      if (!list) byRoom.set(roomId, (list = []));
      list.push(pdu);
    }
    // Rooms side by side (their commits can share one); each room's PDUs in the order sent.
    const answers = await Promise.all([...byRoom].map(([roomId, list]) => (roomId === undefined ? this.receivedEach(origin, list) : this.receivedInRoom(origin, roomId, list))));
    for (const answer of answers.flat()) if (answer) results[answer.eventId] = answer.error === undefined ? {} : { error: answer.error };
    for (const edu of edus) {
      try {
        await this.applyEdu(origin, edu);
      } catch (error) {
        // To-device messages (Olm key shares among them) exist nowhere else: one we failed to store
        // fails the transaction, so that the origin sends it again (their message_id keeps the
        // retry from delivering twice). Bad input is a MatrixError and is dropped like other EDUs.
        if (isJsonObject(edu) && edu.edu_type === "m.direct_to_device" && !(error instanceof MatrixError)) throw error;
        this.deps.logger.log("debug", "an EDU was not applied", { origin, error: error instanceof MatrixError ? error.message : String(error) });
      }
    }
    return { pdus: results };
  }

  private async receivedEach(origin: string, pdus: readonly JsonObject[]): Promise<(PduAnswer | undefined)[]> {
    const out: (PduAnswer | undefined)[] = [];
    for (const pdu of pdus) out.push(await this.received(origin, pdu));
    return out;
  }

  /**
   * The PDUs of one room: for a room we hold, through the ingest together (one commit for those
   * that need nothing fetched), the room's server ACL read once, and again after an ACL change
   * among them (it applies to the PDUs after it).
   */
  private async receivedInRoom(origin: string, roomId: string, pdus: readonly JsonObject[]): Promise<(PduAnswer | undefined)[]> {
    const versionId = await this.deps.roomVersionOf(roomId);
    if (versionId === undefined) return this.receivedEach(origin, pdus);
    const out: (PduAnswer | undefined)[] = [];
    for (let start = 0; start < pdus.length; ) {
      let end = start;
      while (end < pdus.length - 1 && pdus[end]!.type !== "m.room.server_acl") end++;
      const segment = pdus.slice(start, end + 1);
      start = end + 1;
      // The answer is keyed by event id, which from room v3 on is computed, not carried.
      const ids = segment.map((pdu) => this.eventIdOf(pdu, versionId));
      if (await this.aclDenies(roomId, origin)) {
        for (const eventId of ids) out.push(eventId === undefined ? undefined : { eventId, error: `${origin} is denied by the room's server ACL` });
        continue;
      }
      try {
        const outcomes = await this.deps.ingest.receiveAllFrom(origin, roomId, segment, ids);
        outcomes.forEach((outcome, i) => out.push(answerOf(outcome, ids[i])));
      } catch (error) {
        this.deps.logger.log("error", "receiving PDUs failed", { origin, room_id: roomId, error: String((error as Error)?.stack ?? error) });
        for (const eventId of ids) out.push(eventId === undefined ? undefined : { eventId, error: "internal error" });
      }
    }
    return out;
  }

  private async received(origin: string, pdu: JsonObject): Promise<PduAnswer | undefined> {
    const roomId = typeof pdu.room_id === "string" ? pdu.room_id : undefined;
    const versionId = roomId === undefined ? undefined : await this.deps.roomVersionOf(roomId);
    // The answer is keyed by event id, which from room v3 on is computed, not carried.
    const fallbackId = this.eventIdOf(pdu, versionId);
    // A PDU may come from a server other than its sender's: a resident server sends a joining
    // server's join (leave, knock) on to the room's other servers (server-server-api "Joining
    // Rooms": "The resident server must also send the event to other servers in the room"). What
    // vouches for a PDU is its sender's server's signature, which the receipt checks require.
    if (roomId && (await this.aclDenies(roomId, origin))) return fallbackId ? { eventId: fallbackId, error: `${origin} is denied by the room's server ACL` } : undefined;
    if (roomId && versionId === undefined) {
      const answered = await this.outOfBandAnswer(origin, roomId, pdu);
      if (answered) return { eventId: answered };
    }
    try {
      return answerOf(await this.deps.ingest.receiveFrom(origin, pdu), fallbackId);
    } catch (error) {
      this.deps.logger.log("error", "receiving a PDU failed", { origin, error: String((error as Error)?.stack ?? error) });
      if (fallbackId) return { eventId: fallbackId, error: "internal error" };
      throw error;
    }
  }

  /**
   * A room we do not hold can still answer one of our users' pending invite or knock: a leave
   * (invite withdrawn, knock rejected) or a ban for them, signed by the sender's server, ends it, so
   * the user sees the answer in /sync. Servers send these when asked to
   * (knocks.notify_remote_rejection on Portier); nothing else of such a room is kept.
   */
  private async outOfBandAnswer(origin: string, roomId: string, pdu: JsonObject): Promise<string | undefined> {
    const target = typeof pdu.state_key === "string" ? pdu.state_key : undefined;
    const membership = isJsonObject(pdu.content) ? pdu.content.membership : undefined;
    if (pdu.type !== "m.room.member" || !target || serverNameOf(target) !== this.deps.serverName) return undefined;
    if (membership !== "leave" && membership !== "ban") return undefined;
    const pending = await this.deps.outOfBand.current(target, roomId);
    if (!pending || (pending.membership !== "invite" && pending.membership !== "knock")) return undefined;
    const version = roomVersion(pending.roomVersion);
    if (!version) return undefined;
    await this.deps.ingest.fetchKeysFor([pdu], version);
    const signatures = verifyEventSignatures(pdu, version, this.deps.ingest.keyLookup(pdu, version));
    if (!signatures.valid) return undefined;
    await this.deps.outOfBand.record({ userId: target, roomId, roomVersion: version.id, membership, event: pdu, strippedState: [] });
    return this.eventIdOf(pdu, version.id);
  }

  private eventIdOf(pdu: JsonObject, versionId: string | undefined): string | undefined {
    const version = versionId === undefined ? undefined : roomVersion(versionId);
    if (version) {
      try {
        return computeEventId(pdu, version);
      } catch {
        // not an event we can hash: fall back to what it says
      }
    }
    return typeof pdu.event_id === "string" ? pdu.event_id : undefined;
  }

  private async aclDenies(roomId: string, origin: string): Promise<boolean> {
    return !(await this.deps.aclAllows(roomId, origin));
  }

  /**
   * Typing and read receipts of the origin's users reach our clients, and so do their device list
   * and cross-signing changes and to-device messages (e2ee/federation-edus.ts); other EDUs are
   * accepted and left.
   */
  private async applyEdu(origin: string, edu: unknown): Promise<void> {
    if (!isJsonObject(edu) || !isJsonObject(edu.content)) return;
    const content = edu.content;
    const e2ee = this.deps.e2ee;
    if (e2ee && edu.edu_type === "m.device_list_update") return e2ee.deviceListUpdate(origin, content);
    if (e2ee && edu.edu_type === "m.signing_key_update") return e2ee.signingKeyUpdate(origin, content);
    if (e2ee && edu.edu_type === "m.direct_to_device") return e2ee.directToDevice(origin, content);
    if (edu.edu_type === "m.typing") {
      const { room_id: roomId, user_id: userId, typing } = content;
      if (typeof roomId !== "string" || typeof userId !== "string" || typeof typing !== "boolean") return;
      if (serverNameOf(userId) !== origin || (await this.aclDenies(roomId, origin))) return;
      const timeout = typeof content.timeout === "number" ? content.timeout : undefined;
      await this.deps.typing.setTyping(roomId, userId, userId, typing, timeout);
      return;
    }
    if (edu.edu_type === "m.presence") {
      if (!this.deps.presence || !Array.isArray(content.push)) return;
      for (const entry of content.push) {
        if (!isJsonObject(entry) || typeof entry.user_id !== "string" || serverNameOf(entry.user_id) !== origin) continue;
        if (entry.presence !== "online" && entry.presence !== "unavailable" && entry.presence !== "offline") continue;
        this.deps.presence.setRemote(entry.user_id, {
          presence: entry.presence,
          ...(typeof entry.status_msg === "string" ? { status_msg: entry.status_msg } : {}),
          ...(typeof entry.last_active_ago === "number" ? { last_active_ago: entry.last_active_ago } : {}),
        });
      }
      return;
    }
    if (edu.edu_type === "m.receipt") {
      for (const [roomId, byType] of Object.entries(content)) {
        if (!isJsonObject(byType) || (await this.aclDenies(roomId, origin))) continue;
        for (const [receiptType, byUser] of Object.entries(byType)) {
          if (!isJsonObject(byUser)) continue;
          for (const [userId, receipt] of Object.entries(byUser)) {
            if (serverNameOf(userId) !== origin || !isJsonObject(receipt) || !Array.isArray(receipt.event_ids)) continue;
            const threadId = isJsonObject(receipt.data) && typeof receipt.data.thread_id === "string" ? receipt.data.thread_id : undefined;
            for (const eventId of receipt.event_ids) {
              if (typeof eventId !== "string") continue;
              try {
                await this.deps.receipts.setReceipt(roomId, userId, receiptType, eventId, threadId);
              } catch {
                // an event we do not hold, or a user not in the room: nothing to show
              }
            }
          }
        }
      }
    }
  }
}

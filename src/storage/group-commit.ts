// One writer with group commit, shared by the SQLite and PostgreSQL drivers (see database.ts).
// Transactions queue here; each turn of the event loop, everything queued so far runs in one engine
// transaction, each unit in its own savepoint, and commits once. A unit's promise settles after
// that commit, so "resolved" always means "durable".
//
// Savepoint statements (SAVEPOINT, RELEASE) are sent without waiting for their answers: on
// PostgreSQL they travel in the same round trip as the unit's next statement (a connection answers
// in order, so they still run where they were sent). Their answers are checked before anything
// relies on them: before a unit's savepoint is rolled back to, and before COMMIT — or, on an engine
// whose COMMIT fails after any failed statement (commitFailsAfterAnyError), right after it, unless a
// ROLLBACK TO has run in the batch since (it clears that failed state). Four of the ten round trips
// of a message send went to savepoints.
//
// On an engine where each statement is a round trip (concurrentUnits: PostgreSQL), the units of a
// batch that ask for it (TransactionOptions.concurrent) run side by side, in one savepoint: a batch
// of 50 messages then waits for a few round trips instead of 50 one after another (in process,
// 1,191 -> 2,723 sends/s). Any failure among them rolls them all back; those that did not fail
// themselves try once more together, and the rest run one by one with the others.
import { AsyncLocalStorage } from "node:async_hooks";
import { MAX_GROUP_COMMIT, type TransactionOptions } from "./database";

export interface TransactionEngine<Conn> {
  /** Opens an engine transaction and returns the connection it runs on. */
  begin(): Promise<Conn> | Conn;
  /** A statement inside it (SAVEPOINT, RELEASE, ROLLBACK TO). */
  statement(conn: Conn, sql: string): Promise<void> | void;
  /**
   * COMMIT (true) or ROLLBACK (false), and is done with the connection (the engine gives it back, or
   * keeps it for the next batch). `quiet`: the batch was one small unit and nothing is queued behind
   * it, so the engine may wait for the disk on the calling thread (no other write is held up by it; a
   * thread pool's hand-off would only add latency). Not after bulk work (TransactionOptions.alone):
   * its sync may take long, and reads would wait.
   */
  end(conn: Conn, commit: boolean, quiet: boolean): Promise<void> | void;
  /**
   * The engine rolls back, at COMMIT, a transaction in which any statement failed, and end() then
   * throws (PostgreSQL: COMMIT of an aborted transaction answers ROLLBACK). COMMIT may then go out
   * before the answers of the savepoint statements sent ahead of it, in the same round trip.
   */
  readonly commitFailsAfterAnyError?: boolean;
  /**
   * Units that ask for it (TransactionOptions.concurrent) run side by side, their statements
   * interleaved on the connection: worth it where each statement is a round trip (PostgreSQL). Only
   * for an engine whose transaction fails every statement after a failed one (PostgreSQL again):
   * that is how a failed statement that a unit caught is found (the group's RELEASE fails), where
   * no savepoint of the unit's own could roll its half back.
   */
  readonly concurrentUnits?: boolean;
}

export interface TransactionContext<Conn> {
  readonly conn: Conn;
  /** The savepoint statements of the engine transaction sent and not yet answered. */
  readonly pipeline: Pipeline;
  /** Set once the unit has finished: a query from a callback that outlived it must not join the engine transaction. */
  done: boolean;
  savepoints: number;
  /**
   * A unit run alone (TransactionOptions.alone): its nested transactions are no savepoints, and the
   * first of them to fail fails the whole unit (`failure`), even when the unit catches the error.
   */
  readonly flat: boolean;
  /** Set by the first nested transaction of a flat unit that fails, with its error (which may be any value). */
  failure?: { error: unknown };
}

/**
 * A level of savepoints: the unit itself, or a nested transaction inside it. Savepoints of one level
 * run one after another (a RELEASE or ROLLBACK TO of one would otherwise take a sibling's with it).
 */
interface SavepointLevel {
  readonly ctx: object;
  queue: Promise<unknown>;
}

/** Thrown to a query or transaction of a call chain whose transaction has already ended. */
export class TransactionEndedError extends Error {
  override name = "TransactionEndedError";
  constructor() {
    super("a write from a transaction that has already ended (its work must be awaited inside it)");
  }
}

/**
 * Statements sent on a connection without waiting for their answers. Each is owned by the unit
 * (its context) that sent it, so that the failure of a unit's own statements, which rolling back
 * to its savepoint undoes, can be told from one that leaves the engine transaction unusable.
 */
export class Pipeline {
  private readonly sent: { owner: object; outcome: Promise<unknown> }[] = [];
  /**
   * Set when a ROLLBACK TO ran: on PostgreSQL it clears the aborted state a failed statement sent
   * before it left, so COMMIT would no longer fail for that statement.
   */
  rewound = false;

  /** Sends a statement; an engine that runs it synchronously (SQLite) throws its error right here. */
  send<Conn>(engine: TransactionEngine<Conn>, conn: Conn, sql: string, owner: object): void {
    const result = engine.statement(conn, sql);
    if (result instanceof Promise) this.sent.push({ owner, outcome: result.then(() => undefined, (error: unknown) => error ?? new Error(`${sql} failed`)) });
  }

  /** Waits for every answer; resolves with the first failure among statements not owned by `except`. */
  async settle(except?: object): Promise<unknown> {
    let failure: unknown;
    while (this.sent.length > 0) {
      for (const s of this.sent.splice(0)) {
        const error = await s.outcome;
        if (error !== undefined && s.owner !== except) failure ??= error;
      }
    }
    return failure;
  }
}

interface Unit {
  fn: () => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  alone: boolean;
  concurrent: boolean;
}

type Ran = { unit: Unit; value: unknown };

export class GroupCommit<Conn> {
  private readonly context = new AsyncLocalStorage<TransactionContext<Conn>>();
  private readonly level = new AsyncLocalStorage<SavepointLevel>();
  private readonly pending: Unit[] = [];
  private scheduled = false;
  private batch: Promise<void> | undefined;
  private readonly rollbackListeners: (() => void)[] = [];
  private readonly commitListeners: (() => void)[] = [];
  /** Commits so far and units committed in them (for benches and tests). */
  readonly stats = { commits: 0, units: 0 };
  /** Units run side by side (TransactionOptions.concurrent), and those of them run again one by one after a failure among them. */
  readonly sideBySide = { ran: 0, again: 0 };

  constructor(private readonly engine: TransactionEngine<Conn>) {}

  /** The transaction the caller runs in, if any. */
  current(): TransactionContext<Conn> | undefined {
    const ctx = this.context.getStore();
    return ctx && !ctx.done ? ctx : undefined;
  }

  /**
   * Whether the caller's call chain belonged to a transaction that has ended: its writes must fail,
   * not run as transactions of their own (they would commit what the rolled-back one wrote).
   */
  ended(): boolean {
    return this.context.getStore()?.done === true;
  }

  /** Settles when the batch running now (if any) has committed or rolled back. */
  get running(): Promise<void> | undefined {
    return this.batch;
  }

  /** Whether nothing is queued or running. */
  get idle(): boolean {
    return this.batch === undefined && this.pending.length === 0 && !this.scheduled;
  }

  onRollback(listener: () => void): void {
    this.rollbackListeners.push(listener);
  }

  onCommit(listener: () => void): void {
    this.commitListeners.push(listener);
  }

  run<T>(fn: () => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const ctx = this.current();
    if (ctx) return this.savepoint(ctx, fn);
    if (this.ended()) return Promise.reject(new TransactionEndedError());
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ fn, resolve: resolve as (v: unknown) => void, reject, alone: options.alone === true, concurrent: options.concurrent === true && this.engine.concurrentUnits === true });
      this.schedule();
    });
  }

  /** Resolves once everything queued so far has committed (or failed). */
  async drain(): Promise<void> {
    while (!this.idle) {
      if (this.batch) await this.batch;
      else await new Promise((r) => setImmediate(r));
    }
  }

  private schedule(): void {
    if (this.batch || this.scheduled) return;
    this.scheduled = true;
    // Wait one turn of the event loop, so that requests read in the same turn join this commit.
    setImmediate(() => {
      this.scheduled = false;
      if (this.batch || this.pending.length === 0) return;
      this.batch = this.flush().finally(() => {
        this.batch = undefined;
        if (this.pending.length > 0) this.schedule();
      });
    });
  }

  /** The next batch: the units queued before the first that runs alone, or that one by itself. */
  private nextBatch(): Unit[] {
    if (this.pending[0]?.alone) return this.pending.splice(0, 1);
    let count = 0;
    while (count < this.pending.length && count < MAX_GROUP_COMMIT && !this.pending[count]!.alone) count++;
    return this.pending.splice(0, count);
  }

  private async flush(): Promise<void> {
    const units = this.nextBatch();
    let conn: Conn;
    try {
      conn = await this.engine.begin();
    } catch (error) {
      for (const u of units) u.reject(error);
      return;
    }
    // A lone unit needs no savepoint: its failure rolls back the whole engine transaction.
    const shared = units.length > 1;
    const done: Ran[] = [];
    const pipeline = new Pipeline();
    let broken: unknown;
    // Units that may run side by side go first, together. If that fails, those that did not fail
    // themselves try once more together (one retried transaction id must not send a whole batch one
    // by one); the rest run one by one with the others.
    let oneByOne = units.filter((u) => !shared || !u.concurrent);
    let together = shared ? units.filter((u) => u.concurrent) : [];
    for (let round = 1; together.length > 0 && broken === undefined; round++) {
      if (together.length === 1 || round > 2) {
        oneByOne = [...together, ...oneByOne];
        break;
      }
      this.sideBySide.ran += together.length;
      const outcome = await this.runTogether(conn, pipeline, together);
      if ("ran" in outcome) {
        done.push(...outcome.ran);
        break;
      }
      if ("broken" in outcome) {
        broken = outcome.broken;
        oneByOne = [...together, ...oneByOne];
        break;
      }
      this.sideBySide.again += together.length;
      oneByOne = [...outcome.failed, ...oneByOne];
      together = together.filter((u) => !outcome.failed.includes(u));
    }
    for (const unit of oneByOne) {
      if (broken !== undefined) {
        unit.reject(broken);
        continue;
      }
      const ctx: TransactionContext<Conn> = { conn, pipeline, done: false, savepoints: 0, flat: unit.alone };
      try {
        if (shared) pipeline.send(this.engine, conn, "SAVEPOINT unit", ctx);
        const value = await this.context.run(ctx, () => this.level.run({ ctx, queue: Promise.resolve() }, unit.fn));
        ctx.done = true;
        // What a failed nested transaction wrote was not rolled back by itself (no savepoint).
        if (ctx.failure) throw ctx.failure.error;
        if (shared) pipeline.send(this.engine, conn, "RELEASE unit", ctx);
        done.push({ unit, value });
      } catch (error) {
        ctx.done = true;
        // In a flat unit, the nested failure is the cause of whatever it threw after.
        unit.reject(ctx.failure ? ctx.failure.error : error);
        this.rolledBack();
        // A failed statement of an earlier unit (its RELEASE) leaves nothing to roll back to.
        const earlier = await pipeline.settle(ctx);
        if (earlier !== undefined) broken = earlier;
        else if (shared) {
          try {
            pipeline.rewound = true;
            await this.engine.statement(conn, "ROLLBACK TO unit");
            await this.engine.statement(conn, "RELEASE unit");
          } catch (undo) {
            broken = undo;
          }
        }
      }
    }
    // Every savepoint statement answered without error before COMMIT: none of them can have been
    // lost. Or, where a failed one makes COMMIT fail (commitFailsAfterAnyError), their answers are
    // read after it: the same outcome, one round trip sooner.
    if (!this.engine.commitFailsAfterAnyError || pipeline.rewound) broken ??= await pipeline.settle();
    const commit = done.length > 0 && broken === undefined;
    try {
      await this.engine.end(conn, commit, units.length === 1 && !units[0]!.alone && this.pending.length === 0);
    } catch (error) {
      this.rolledBack();
      // A savepoint statement's failure is what made COMMIT fail: its error says why.
      const cause = (await pipeline.settle()) ?? error;
      for (const d of done) d.unit.reject(cause);
      return;
    }
    // Answered before COMMIT's (a connection answers in order); without error, or COMMIT would have
    // failed (no ROLLBACK TO ran since, or they were checked before it).
    if (this.engine.commitFailsAfterAnyError) await pipeline.settle();
    if (!commit) {
      // The engine transaction was rolled back whole: what its units did is gone (listeners keep
      // caches of it), even when no unit failed itself (a savepoint statement's answer did).
      if (done.length > 0) this.rolledBack();
      for (const d of done) d.unit.reject(broken ?? new Error("transaction rolled back"));
      return;
    }
    this.stats.commits++;
    this.stats.units += done.length;
    for (const listener of this.commitListeners) listener();
    for (const d of done) d.unit.resolve(d.value);
  }

  /**
   * Units run side by side in one savepoint, each without one of its own (their nested transactions
   * inline, as in a unit run alone). Any failure among them, even a failed statement that a unit
   * caught (on PostgreSQL it leaves the transaction aborted, and RELEASE then fails), rolls back
   * what all of them wrote: they are then to run again (`failed`: those that failed themselves), or,
   * when the rollback itself failed, the engine transaction is lost (`broken`).
   */
  private async runTogether(conn: Conn, pipeline: Pipeline, units: Unit[]): Promise<{ ran: Ran[] } | { failed: Unit[] } | { broken: unknown }> {
    const group = {};
    pipeline.send(this.engine, conn, "SAVEPOINT together", group);
    const contexts = units.map((): TransactionContext<Conn> => ({ conn, pipeline, done: false, savepoints: 0, flat: true }));
    // An async callback: a function that throws before its first await fails its unit, not the batch.
    const outcomes = await Promise.allSettled(units.map(async (unit, i) => this.context.run(contexts[i]!, () => this.level.run({ ctx: contexts[i]!, queue: Promise.resolve() }, unit.fn))));
    const failed = units.filter((_, i) => {
      contexts[i]!.done = true;
      return contexts[i]!.failure !== undefined || outcomes[i]!.status === "rejected";
    });
    if (failed.length === 0) {
      try {
        await this.engine.statement(conn, "RELEASE together");
        return { ran: units.map((unit, i) => ({ unit, value: (outcomes[i] as PromiseFulfilledResult<unknown>).value })) };
      } catch {
        // A statement of the group failed: rolled back below.
      }
    }
    this.rolledBack();
    try {
      pipeline.rewound = true;
      await this.engine.statement(conn, "ROLLBACK TO together");
      await this.engine.statement(conn, "RELEASE together");
    } catch (undo) {
      return { broken: undo };
    }
    return { failed };
  }

  /**
   * A nested transaction: a savepoint, after any sibling at the same level has finished. In a unit
   * run alone, none: bulk work nests one per row (a join's 10,000 state events), and on PostgreSQL
   * each savepoint that writes is a subtransaction, past the 64 a session keeps track of cheaply
   * (every other session's snapshots then look them up on disk while the unit is open).
   */
  private savepoint<T>(ctx: TransactionContext<Conn>, fn: () => Promise<T>): Promise<T> {
    const parent = this.level.getStore();
    // Siblings run one after another either way: a nested transaction may read what it then writes.
    const run = () => (ctx.flat ? this.inline(ctx, fn) : this.inSavepoint(ctx, fn));
    if (!parent || parent.ctx !== ctx) return run();
    const result = parent.queue.then(run, run);
    parent.queue = result.catch(() => undefined);
    return result;
  }

  private async inSavepoint<T>(ctx: TransactionContext<Conn>, fn: () => Promise<T>): Promise<T> {
    if (ctx.done) throw new TransactionEndedError();
    const name = `nested${++ctx.savepoints}`;
    ctx.pipeline.send(this.engine, ctx.conn, `SAVEPOINT ${name}`, ctx);
    try {
      const value = await this.level.run({ ctx, queue: Promise.resolve() }, fn);
      ctx.pipeline.send(this.engine, ctx.conn, `RELEASE ${name}`, ctx);
      return value;
    } catch (error) {
      ctx.pipeline.rewound = true;
      await this.engine.statement(ctx.conn, `ROLLBACK TO ${name}`);
      await this.engine.statement(ctx.conn, `RELEASE ${name}`);
      this.rolledBack();
      throw error;
    }
  }

  private async inline<T>(ctx: TransactionContext<Conn>, fn: () => Promise<T>): Promise<T> {
    if (ctx.done) throw new TransactionEndedError();
    // The unit is failed already: no more of its work (it is all rolled back).
    if (ctx.failure) throw ctx.failure.error;
    try {
      return await this.level.run({ ctx, queue: Promise.resolve() }, fn);
    } catch (error) {
      ctx.failure ??= { error };
      throw error;
    }
  }

  private rolledBack(): void {
    for (const listener of this.rollbackListeners) listener();
  }
}

/** What the SQLite and PostgreSQL drivers share: transactions through one GroupCommit writer. */
export abstract class SingleWriterDatabase<Conn> {
  protected readonly writer: GroupCommit<Conn>;

  constructor(engine: TransactionEngine<Conn>) {
    this.writer = new GroupCommit<Conn>(engine);
  }

  /** Commits so far and the transactions committed in them (how well group commit batches). */
  get commitStats(): { commits: number; units: number } {
    return this.writer.stats;
  }

  transaction<T>(fn: () => Promise<T>, options?: TransactionOptions): Promise<T> {
    return this.writer.run(fn, options);
  }

  inTransaction(): boolean {
    return this.writer.current() !== undefined;
  }

  onRollback(listener: () => void): void {
    this.writer.onRollback(listener);
  }

  onCommit(listener: () => void): void {
    this.writer.onCommit(listener);
  }
}

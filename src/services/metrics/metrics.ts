// The server's Prometheus metrics (text exposition format, through prom-client): one registry per
// server instance, so tests can run two servers in one process. Hot paths only add to a series found
// once (series.ts: no label object or hashing per call); queue depths and totals the services
// already keep are read when Prometheus scrapes, so they cost nothing in between.
//
// Label values are bounded: HTTP routes are templates of the route table (never a raw path with user
// or room ids), methods a fixed list, and per-destination federation series exist only for the few
// destinations backing off the longest.
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { FastCounter, FastHistogram, type CounterSeries, type HistogramSeries } from "./series";

/** What the /sync notifier keeps: waits pending now, and how the ended ones ended. */
export interface SyncWaitSource {
  waitingCount(): number;
  readonly outcomes: Readonly<Record<string, number>>;
}

/** What the per-room write queue keeps. */
export interface RoomWriteQueueSource {
  readonly busyRooms: number;
  readonly queuedTasks: number;
  deepestQueue(): number;
}

/** What the outbound federation sender keeps, and the outbox's queued rows. */
export interface FederationSenderSource {
  destinationCounts(): { sending: number; backingOff: number };
  backingOff(): { destination: string; failures: number }[];
  readonly counters: { readonly transactionsSent: number; readonly transactionsRefused: number; readonly failedAttempts: number; readonly pdusSent: number; readonly edusSent: number };
  /** Units queued (claimed or not) for one destination, or for all. */
  queuedUnits(destination?: string): Promise<number>;
}

/** One route template and method: a request's status and duration go here. */
export interface RequestSeries {
  observe(status: number, seconds: number): void;
}

/** The per-destination outbox depth is shown for at most this many destinations (those backing off the longest). */
export const MAX_DESTINATION_SERIES = 10;

const PREFIX = "portier_";

// Requests range from sub-millisecond reads to /sync long-polls of up to two minutes.
const REQUEST_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
// SQLite statements take microseconds; PostgreSQL ones a network round trip.
const STATEMENT_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
// A commit includes the fsync of its batch.
const COMMIT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class MetricsRegistry {
  readonly registry = new Registry();
  private readonly requests: FastCounter;
  private readonly requestDuration: FastHistogram;
  private readonly events: CounterSeries;
  /** Bound once: the database calls these on every statement. */
  readonly database: { statement(seconds: number, write: boolean): void; commit(seconds: number): void };

  constructor(options: { processMetrics?: boolean } = {}) {
    const registry = this.registry;
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
    this.requests = new FastCounter(`${PREFIX}http_requests_total`, "HTTP requests answered, by method, route template and status code.", ["method", "route", "status"]).register(registry);
    this.requestDuration = new FastHistogram(`${PREFIX}http_request_duration_seconds`, "Time to answer an HTTP request (until its response starts), by method and route template.", ["method", "route"], REQUEST_BUCKETS).register(registry);
    this.events = new FastCounter(`${PREFIX}events_persisted_total`, "Events persisted into room timelines (local and received over federation).", []).register(registry).labels();
    const statements = new FastHistogram(`${PREFIX}db_statement_seconds`, "Time the database engine took to run one statement, by kind (read or write).", ["kind"], STATEMENT_BUCKETS).register(registry);
    const commits: HistogramSeries = new FastHistogram(`${PREFIX}db_commit_seconds`, "Time of one group-commit batch of transactions, from BEGIN to its durable COMMIT.", [], COMMIT_BUCKETS).register(registry).labels();
    const reads = statements.labels("read");
    const writes = statements.labels("write");
    this.database = {
      statement: (seconds, write) => (write ? writes : reads).observe(seconds),
      commit: (seconds) => commits.observe(seconds),
    };
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /** The series of one route template and method; callers keep it (building one allocates). */
  requestSeries(method: string, route: string): RequestSeries {
    const duration = this.requestDuration.labels(method, route);
    const byStatus = new Map<number, CounterSeries>();
    return {
      observe: (status, seconds) => {
        let counter = byStatus.get(status);
        if (counter === undefined) {
          counter = this.requests.labels(method, route, String(status));
          byStatus.set(status, counter);
        }
        counter.inc();
        duration.observe(seconds);
      },
    };
  }

  eventsPersisted(count: number): void {
    this.events.inc(count);
  }

  watchSync(source: SyncWaitSource): void {
    new Gauge({
      name: `${PREFIX}sync_long_polls_in_flight`,
      help: "/sync requests waiting for something new (long-polls).",
      registers: [this.registry],
      collect() {
        this.set(source.waitingCount());
      },
    });
    new Counter({
      name: `${PREFIX}sync_long_polls_ended_total`,
      help: "/sync long-polls ended, by outcome: woken (by a change that concerns the user), timeout, aborted (the client left), stopped (shutdown).",
      labelNames: ["outcome"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [outcome, count] of Object.entries(source.outcomes)) this.inc({ outcome }, count);
      },
    });
  }

  watchRoomWriteQueue(source: RoomWriteQueueSource): void {
    const registers = [this.registry];
    new Gauge({ name: `${PREFIX}room_write_queue_tasks`, help: "Room writes queued or running, in all rooms.", registers, collect() { this.set(source.queuedTasks); } });
    new Gauge({ name: `${PREFIX}room_write_queue_busy_rooms`, help: "Rooms with writes queued or running.", registers, collect() { this.set(source.busyRooms); } });
    new Gauge({ name: `${PREFIX}room_write_queue_max_depth`, help: "The most writes queued or running for one room.", registers, collect() { this.set(source.deepestQueue()); } });
  }

  watchFederationSender(source: FederationSenderSource): void {
    const registers = [this.registry];
    new Gauge({
      name: `${PREFIX}federation_destinations_pending`,
      help: "Destinations with outbound federation work, by state: sending (a transaction in flight or next) or backing_off (waiting to retry).",
      labelNames: ["state"],
      registers,
      collect() {
        const counts = source.destinationCounts();
        this.set({ state: "sending" }, counts.sending);
        this.set({ state: "backing_off" }, counts.backingOff);
      },
    });
    new Gauge({
      name: `${PREFIX}federation_queued_units`,
      help: "PDUs and EDUs queued for other servers (one per destination), not yet accepted.",
      registers,
      async collect() {
        this.set(await source.queuedUnits());
      },
    });
    new Gauge({
      name: `${PREFIX}federation_destination_queued_units`,
      help: `PDUs and EDUs queued for one destination, for the ${MAX_DESTINATION_SERIES} destinations backing off after the most failures.`,
      labelNames: ["destination"],
      registers,
      async collect() {
        // Series of destinations that recovered go away, so the label set stays bounded.
        this.reset();
        const worst = [...source.backingOff()].sort((a, b) => b.failures - a.failures).slice(0, MAX_DESTINATION_SERIES);
        const depths = await Promise.all(worst.map((d) => source.queuedUnits(d.destination)));
        worst.forEach((d, i) => this.set({ destination: d.destination }, depths[i]!));
      },
    });
    new Counter({
      name: `${PREFIX}federation_transactions_total`,
      help: "Outbound federation transactions, by result: sent (accepted), refused (dropped on a 4xx), failed (an attempt to retry).",
      labelNames: ["result"],
      registers,
      collect() {
        this.reset();
        this.inc({ result: "sent" }, source.counters.transactionsSent);
        this.inc({ result: "refused" }, source.counters.transactionsRefused);
        this.inc({ result: "failed" }, source.counters.failedAttempts);
      },
    });
    new Counter({
      name: `${PREFIX}federation_units_sent_total`,
      help: "PDUs and EDUs in transactions other servers accepted, by kind.",
      labelNames: ["kind"],
      registers,
      collect() {
        this.reset();
        this.inc({ kind: "pdu" }, source.counters.pdusSent);
        this.inc({ kind: "edu" }, source.counters.edusSent);
      },
    });
  }
}

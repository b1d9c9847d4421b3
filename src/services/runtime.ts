// Time, logging and service lifecycle: injected so that tests control them.

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

export type LogLevel = "debug" | "info" | "warn" | "error";
export interface Logger {
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFormat = "text" | "json";

/** The keys of a JSON log line of its own; a field of the same name is kept as `field_<name>`. */
const JSON_LINE_KEYS = new Set(["time", "level", "message"]);

/** A value JSON.stringify cannot write (a bigint, a cycle) is written as its text. */
function stringifySafely(value: Record<string, unknown>): string {
  try {
    return JSON.stringify(value);
  } catch {
    const seen = new WeakSet<object>();
    return JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === "bigint") return v.toString();
      if (typeof v === "object" && v !== null) {
        if (seen.has(v)) return "[cycle]";
        seen.add(v);
      }
      return v;
    });
  }
}

/**
 * One line per entry on stderr. text: time, level, message, then fields as JSON. json: one JSON
 * object per line, {"time", "level", "message", ...fields}, for log collectors.
 */
export function consoleLogger(minimum: LogLevel, format: LogFormat = "text", write: (line: string) => void = (line) => void process.stderr.write(line)): Logger {
  return {
    log(level, message, fields) {
      if (LEVELS[level] < LEVELS[minimum]) return;
      const time = new Date().toISOString();
      if (format === "json") {
        const line: Record<string, unknown> = { time, level, message };
        if (fields) for (const key in fields) line[JSON_LINE_KEYS.has(key) ? `field_${key}` : key] = fields[key];
        write(stringifySafely(line) + "\n");
        return;
      }
      const extra = fields && Object.keys(fields).length ? " " + JSON.stringify(fields) : "";
      write(`${time} ${level.toUpperCase()} ${message}${extra}\n`);
    },
  };
}

/** A service with an explicit start and stop, run by the server in registration order (stopped in reverse). */
export interface Service {
  readonly name: string;
  start?(): void | Promise<void>;
  stop?(): void | Promise<void>;
}

/**
 * fn over every item, at most `limit` at a time, results in item order. After a failure no further
 * item is started (those running finish), and the first failure is thrown.
 */
export async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index]!);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

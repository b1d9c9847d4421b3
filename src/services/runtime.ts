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

/** One line per entry on stderr: time, level, message, then fields as JSON. */
export function consoleLogger(minimum: LogLevel): Logger {
  return {
    log(level, message, fields) {
      if (LEVELS[level] < LEVELS[minimum]) return;
      const extra = fields && Object.keys(fields).length ? " " + JSON.stringify(fields) : "";
      process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase()} ${message}${extra}\n`);
    },
  };
}

/** A service with an explicit start and stop, run by the server in registration order (stopped in reverse). */
export interface Service {
  readonly name: string;
  start?(): void | Promise<void>;
  stop?(): void | Promise<void>;
}
